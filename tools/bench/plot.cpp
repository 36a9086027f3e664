#include "bench/plot.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <optional>
#include <string_view>
#include <utility>

#include <fmt/format.h>

#include "trace_view/render.hpp"

namespace switchboard::tools::bench {
namespace {

using trace_view::xml_escape;

constexpr double glyph_px = 6.3;  // a sans-serif glyph's average width at 11 px: keeps text apart
constexpr double min_width = 1000;
constexpr double gap = 24;          // between panels, across and down
constexpr double axis_space = 66;   // left of a plot: tick labels and the rotated axis title
constexpr double below_plot = 44;   // under a plot: tick labels and the axis title
constexpr double marker_pitch = 32; // between a ratio panel's markers: room for "1.07" above each

double text_px(std::string_view text) {
  // Code points, not bytes: "µs" is two glyphs.
  const auto n = std::count_if(text.begin(), text.end(),
                               [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; });
  return static_cast<double>(n) * glyph_px;
}

// `v` with `decimals`, the thousands grouped: "1,500", "12.5".
std::string grouped(double v, int decimals) {
  std::string digits = fmt::format("{:.{}f}", std::fabs(v), decimals);
  const auto point = std::min(digits.find('.'), digits.size());
  for (auto at = static_cast<std::ptrdiff_t>(point) - 3; at > 0; at -= 3) {
    digits.insert(static_cast<std::size_t>(at), ",");
  }
  return (v < 0 && digits.find_first_not_of("0.,") != std::string::npos ? "-" : "") + digits;
}

// A figure as the eye reads it: three significant digits or all of its integer part.
std::string figure(double v) { return grouped(v, std::fabs(v) < 10 ? 2 : std::fabs(v) < 100 ? 1 : 0); }

class canvas {
 public:
  template <class... Args>
  void put(fmt::format_string<Args...> format, Args&&... args) {
    out_ += fmt::format(format, std::forward<Args>(args)...);
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

// How a server is drawn in every panel. Switchboard and the loop of its
// mechanism share a colour, the loop dashed with open markers, so that each
// pair reads at a glance; a traced twin is dotted.
struct look {
  std::string colour;
  std::string dash;  // stroke-dasharray; empty: solid
  bool hollow = false;
};

class looks {
 public:
  explicit looks(const std::vector<std::string>& servers) {
    static const std::map<std::string, std::string, std::less<>> by_mechanism{
        {"select", "#1f77b4"}, {"epoll", "#d62728"}, {"uring", "#2ca02c"}};
    static const std::vector<std::string> others{"#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                                                 "#bcbd22", "#17becf", "#ff7f0e"};
    std::size_t next_other = 0;
    for (const std::string& server : servers) {
      constexpr std::string_view ours = "switchboard-", loop_prefix = "echo-", trace_suffix = "+trace";
      std::string_view name = server;
      const bool traced = name.ends_with(trace_suffix);
      if (traced) name.remove_suffix(trace_suffix.size());
      const bool loop = name.starts_with(loop_prefix);
      std::string_view mechanism;
      if (name.starts_with(ours)) mechanism = name.substr(ours.size());
      if (loop) mechanism = name.substr(loop_prefix.size());
      look l;
      if (auto known = by_mechanism.find(mechanism); known != by_mechanism.end()) {
        l.colour = known->second;
        l.hollow = loop;
        l.dash = traced ? "2 3" : loop ? "7 4" : "";
      } else {
        l.colour = others[next_other++ % others.size()];
      }
      by_server_.emplace(server, l);
    }
  }
  const look& of(const std::string& server) const { return by_server_.at(server); }

 private:
  std::map<std::string, look> by_server_;
};

void marker(canvas& c, double x, double y, double radius, const look& l, const std::string& tooltip) {
  c.put("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"{}\" fill=\"{}\" stroke=\"{}\" stroke-width=\"1.5\">"
        "<title>{}</title></circle>\n",
        x, y, radius, l.hollow ? "white" : l.colour, l.colour, xml_escape(tooltip));
}

std::string dash_attribute(const look& l) {
  return l.dash.empty() ? "" : fmt::format(" stroke-dasharray=\"{}\"", l.dash);
}

// Maps values to pixels, `lo` to `from_px` and `hi` to `to_px`.
struct axis {
  std::vector<double> ticks;
  double step = 1;  // between linear ticks
  bool log = false;
  double lo = 0, hi = 1;
  double from_px = 0, to_px = 1;

  double at(double v) const {
    const double f = log ? (std::log10(v) - std::log10(lo)) / (std::log10(hi) - std::log10(lo)) : (v - lo) / (hi - lo);
    return from_px + f * (to_px - from_px);
  }
  std::string label(double v) const { return tick_text(v, log ? v : step); }
};

axis linear_axis(double lo, double hi, std::size_t max_ticks) {
  axis a;
  a.ticks = round_ticks(lo, hi, max_ticks);
  a.lo = a.ticks.front();
  a.hi = a.ticks.back();
  a.step = a.ticks[1] - a.ticks[0];
  return a;
}

// Over positive values: ticks at the 1-2-5 values inside the data's range,
// the powers of ten alone where those would crowd; the ends a little outside.
axis log_axis(double lo, double hi) {
  axis a;
  a.log = true;
  a.lo = lo / 1.25;
  a.hi = hi * 1.25;
  const double decades = std::log10(hi) - std::log10(lo);
  for (double decade = std::pow(10.0, std::floor(std::log10(lo))); decade <= hi * 1.001; decade *= 10) {
    for (const double m : {1.0, 2.0, 5.0}) {
      const double v = m * decade;
      if (v >= lo * 0.999 && v <= hi * 1.001 && (m == 1 || decades <= 5)) a.ticks.push_back(v);
    }
  }
  return a;
}

struct panel {
  double width = 0;
  double height = 0;
  std::string body;  // drawn with its top left corner at 0,0
};

// The title in bold and a note under it, wrapped to the panel's width;
// returns where the plot may start.
double heading(canvas& c, const std::string& title, const std::string& note, double width) {
  c.put("<text x=\"0\" y=\"14\" font-size=\"13\" font-weight=\"bold\">{}</text>\n", xml_escape(title));
  double y = 30;
  std::string line;
  auto flush = [&] {
    c.put("<text x=\"0\" y=\"{:.0f}\" fill=\"#555\">{}</text>\n", y, xml_escape(line));
    y += 14;
    line.clear();
  };
  std::size_t start = 0;
  while (start < note.size()) {
    const std::size_t space = std::min(note.find(' ', start), note.size());
    const std::string word = note.substr(start, space - start);
    if (!line.empty() && text_px(line + " " + word) > width) flush();
    line += (line.empty() ? "" : " ") + word;
    start = space + 1;
  }
  if (!line.empty()) flush();
  return y + 8;
}

// Grid lines and labels for a vertical value axis, the axis title turned on its side.
void value_axis_left(canvas& c, const axis& a, double left, double right, const std::string& title) {
  for (const double t : a.ticks) {
    const double y = a.at(t);
    c.put("<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#e4e4e4\"/>\n", left, y, right, y);
    c.put("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\">{}</text>\n", left - 5, y + 4,
          xml_escape(a.label(t)));
  }
  c.put("<text transform=\"translate(12 {:.1f}) rotate(-90)\" text-anchor=\"middle\">{}</text>\n",
        (a.from_px + a.to_px) / 2, xml_escape(title));
  c.put("<line x1=\"{0:.1f}\" y1=\"{1:.1f}\" x2=\"{0:.1f}\" y2=\"{2:.1f}\" stroke=\"#555\"/>\n", left, a.from_px,
        a.to_px);
}

// Grid lines and labels for a horizontal axis under a plot from `top` to `bottom`.
void axis_below(canvas& c, const axis& a, double top, double bottom, const std::string& title) {
  for (const double t : a.ticks) {
    const double x = a.at(t);
    c.put("<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#e4e4e4\"/>\n", x, top, x, bottom);
    c.put("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n", x, bottom + 15,
          xml_escape(a.label(t)));
  }
  c.put("<line x1=\"{0:.1f}\" y1=\"{2:.1f}\" x2=\"{1:.1f}\" y2=\"{2:.1f}\" stroke=\"#555\"/>\n", a.from_px, a.to_px,
        bottom);
  c.put("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n", (a.from_px + a.to_px) / 2,
        bottom + 34, xml_escape(title));
}

enum class legend_sample { marker, line };

double legend_width(const std::vector<std::string>& servers) {
  double widest = 0;
  for (const std::string& s : servers) widest = std::max(widest, text_px(s));
  return widest + 44;
}

// One entry per line, right of the plot: nothing overlaps however many;
// returns the bottom of the last entry.
double legend(canvas& c, const std::vector<std::string>& servers, const looks& style, double x, double top,
              legend_sample sample) {
  double y = top;
  for (const std::string& s : servers) {
    const look& l = style.of(s);
    if (sample == legend_sample::line) {
      c.put("<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"{}\" stroke-width=\"2\"{}/>\n", x,
            y, x + 26, y, l.colour, dash_attribute(l));
    }
    marker(c, x + 13, y, 4, l, s);
    c.put("<text x=\"{:.1f}\" y=\"{:.1f}\">{}</text>\n", x + 34, y + 4, xml_escape(s));
    y += 17;
  }
  return y;
}

std::vector<std::string> servers_of(const std::vector<const row*>& rows) {
  std::vector<std::string> out;
  for (const row* r : rows) {
    if (std::find(out.begin(), out.end(), r->server) == out.end()) out.push_back(r->server);
  }
  return out;
}

// The rows of the catalogue's scenarios that `wanted` picks, in the
// catalogue's order (then the servers' order of the run), those with `has`.
std::vector<const row*> pick(const std::vector<row>& rows, const std::function<bool(const scenario&)>& wanted,
                             const std::function<bool(const row&)>& has) {
  std::vector<const row*> out;
  for (const scenario& s : scenario_catalogue()) {
    if (!wanted(s)) continue;
    for (const row& r : rows) {
      if (r.scenario == s.name && has(r)) out.push_back(&r);
    }
  }
  return out;
}

// What a ratio to the hand-written loop is of, by the scenario's kind; the
// ratio to one worker (scenarios with workers) is not drawn.
enum class ratio_of { rps, cpu, instructions };

std::optional<ratio_of> ratio_kind(const scenario& s) {
  if (s.workers > 0 || s.hold) return std::nullopt;
  if (s.counted_round_trips > 0) return ratio_of::instructions;
  return s.rate > 0 ? ratio_of::cpu : ratio_of::rps;
}

struct ratio_words {
  std::string title, note, axis;
};

ratio_words words_for(ratio_of kind) {
  const std::string spread =
      "The dot is the median over pairs of switchboard's figure over the loop's in the same pair, "
      "the whisker the lowest and highest pair; the line at 1.0 is the loop.";
  switch (kind) {
    case ratio_of::rps:
      return {"Throughput against the hand-written loop of the same mechanism: higher is better",
              "Round trips per second of switchboard on each backend over those of the loop. " + spread,
              "rps ÷ the loop's rps"};
    case ratio_of::cpu:
      return {"Paced: CPU per round trip against the loop: lower is better",
              "Server CPU per round trip over the loop's at the same fixed rate. " + spread,
              "CPU/RT ÷ the loop's CPU/RT"};
    case ratio_of::instructions:
      return {"Instructions per round trip against the loop: lower is better",
              "User-space instructions per round trip under callgrind over the loop's. " + spread,
              "instr/RT ÷ the loop's instr/RT"};
  }
  return {};
}

std::vector<const row*> ratio_rows(const std::vector<row>& rows, ratio_of kind) {
  return pick(
      rows, [&](const scenario& s) { return ratio_kind(s) == kind; }, [](const row& r) { return r.ratio.has_value(); });
}

std::vector<std::string> scenarios_of(const std::vector<const row*>& rows) {
  std::vector<std::string> out;
  for (const row* r : rows) {
    if (out.empty() || out.back() != r->scenario) out.push_back(r->scenario);
  }
  return out;
}

// The width a ratio panel needs for its markers, labels and legend.
double ratio_width(const std::vector<const row*>& rows) {
  const auto servers = servers_of(rows);
  double group = static_cast<double>(servers.size()) * marker_pitch + 16;
  for (const std::string& s : scenarios_of(rows)) group = std::max(group, text_px(s) + 16);
  return axis_space + static_cast<double>(scenarios_of(rows).size()) * group + legend_width(servers) + 16;
}

// One group per scenario, one slot per switchboard server in every group.
std::optional<panel> ratio_panel(const std::vector<row>& all, ratio_of kind, double width, const looks& style) {
  const auto rows = ratio_rows(all, kind);
  if (rows.empty()) return std::nullopt;
  const auto servers = servers_of(rows);
  const auto scenarios = scenarios_of(rows);
  const ratio_words words = words_for(kind);
  canvas c;
  const double top = heading(c, words.title, words.note, width);
  const double plot_h = 200;
  const double left = axis_space;
  const double right = width - legend_width(servers);

  double lo = 0.9, hi = 1.1;  // 1.0 always in view, with room around it
  for (const row* r : rows) {
    lo = std::min({lo, *r->ratio, r->ratio_min.value_or(*r->ratio)});
    hi = std::max({hi, *r->ratio, r->ratio_max.value_or(*r->ratio)});
  }
  axis y = linear_axis(lo, hi, 6);
  // Room above the top tick for the highest marker's figure.
  y.from_px = top + 14 + plot_h;
  y.to_px = top + 14;
  value_axis_left(c, y, left, right, words.axis);
  c.put("<line x1=\"{0:.1f}\" y1=\"{2:.1f}\" x2=\"{1:.1f}\" y2=\"{2:.1f}\" stroke=\"#222\" stroke-width=\"1.5\"/>\n",
        left, right, y.at(1.0));

  const double group_w = (right - left) / static_cast<double>(scenarios.size());
  const double pitch = std::min(marker_pitch * 1.5, (group_w - 16) / static_cast<double>(servers.size()));
  for (std::size_t g = 0; g < scenarios.size(); ++g) {
    const double centre = left + group_w * (static_cast<double>(g) + 0.5);
    if (g > 0) {
      c.put("<line x1=\"{0:.1f}\" y1=\"{1:.1f}\" x2=\"{0:.1f}\" y2=\"{2:.1f}\" stroke=\"#ccc\"/>\n",
            left + group_w * static_cast<double>(g), y.to_px, y.from_px);
    }
    c.put("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n", centre, y.from_px + 15,
          xml_escape(scenarios[g]));
    for (std::size_t i = 0; i < servers.size(); ++i) {
      const auto r = std::find_if(rows.begin(), rows.end(), [&](const row* x) {
        return x->scenario == scenarios[g] && x->server == servers[i];
      });
      if (r == rows.end()) continue;
      const look& l = style.of(servers[i]);
      const double x = centre + pitch * (static_cast<double>(i) - static_cast<double>(servers.size() - 1) / 2);
      const double low = (*r)->ratio_min.value_or(*(*r)->ratio);
      const double high = (*r)->ratio_max.value_or(*(*r)->ratio);
      c.put("<path d=\"M{0:.1f} {1:.1f}V{2:.1f}M{3:.1f} {1:.1f}h8M{3:.1f} {2:.1f}h8\" stroke=\"{4}\" "
            "stroke-width=\"1.5\" fill=\"none\"/>\n",
            x, y.at(low), y.at(high), x - 4, l.colour);
      marker(c, x, y.at(*(*r)->ratio), 4.5, l,
             fmt::format("{} at {}: {:.2f} (pairs {:.2f} to {:.2f})", servers[i], scenarios[g], *(*r)->ratio, low,
                         high));
      c.put("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"middle\" font-size=\"9\">{:.2f}</text>\n", x,
            y.at(high) - 5, *(*r)->ratio);
    }
  }
  const double legend_bottom = legend(c, servers, style, right + 12, y.to_px + 6, legend_sample::marker);
  return panel{width, std::max(y.from_px + below_plot - 18, legend_bottom), c.take()};
}

// A horizontal bar per server, the names as the axis's labels.
std::optional<panel> bar_panel(const std::string& title, const std::string& note, const std::string& unit,
                               const std::vector<std::pair<std::string, double>>& bars, double width,
                               const looks& style) {
  if (bars.empty()) return std::nullopt;
  canvas c;
  const double top = heading(c, title, note, width);
  double names = 0, most = 0;
  for (const auto& [server, value] : bars) {
    names = std::max(names, text_px(server));
    most = std::max(most, value);
  }
  const double pitch = 20;
  const double bottom = top + pitch * static_cast<double>(bars.size()) + 4;
  axis x = linear_axis(0, most, 5);
  x.from_px = names + 10;
  x.to_px = width - 52;  // room for the last bar's figure
  axis_below(c, x, top, bottom, unit);
  for (std::size_t i = 0; i < bars.size(); ++i) {
    const auto& [server, value] = bars[i];
    const look& l = style.of(server);
    const double y = top + 4 + pitch * static_cast<double>(i);
    c.put("<text x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"end\">{}</text>\n", names + 4, y + 11, xml_escape(server));
    c.put("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"14\" fill=\"{}\" fill-opacity=\"{}\" "
          "stroke=\"{}\"{}><title>{}</title></rect>\n",
          x.from_px, y, std::max(x.at(value) - x.from_px, 0.5), l.colour, l.hollow ? 0.35 : 0.85, l.colour,
          dash_attribute(l), xml_escape(fmt::format("{}: {} {}", server, figure(value), unit)));
    c.put("<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"10\">{}</text>\n", x.at(value) + 4, y + 11, figure(value));
  }
  return panel{width, bottom + below_plot, c.take()};
}

struct point {
  double x = 0, rps = 0;
  std::string scenario;
};

struct series {
  std::string server;
  std::vector<point> points;
};

// rps against a scenario property, one line per server with two points or
// more; the servers with a single point named under the legend.
std::optional<panel> line_panel(const std::string& title, const std::string& note, const std::string& x_title,
                                bool log_x, const std::vector<series>& all, double width, const looks& style) {
  std::vector<const series*> lines;
  std::vector<std::string> single;
  for (const series& s : all) {
    if (s.points.size() >= 2) {
      lines.push_back(&s);
    } else {
      single.push_back(s.server);
    }
  }
  if (lines.empty()) return std::nullopt;
  double x_lo = lines[0]->points[0].x, x_hi = x_lo, most = 0;
  std::vector<std::string> servers;
  for (const series* s : lines) {
    servers.push_back(s->server);
    for (const point& p : s->points) {
      x_lo = std::min(x_lo, p.x);
      x_hi = std::max(x_hi, p.x);
      most = std::max(most, p.rps);
    }
  }
  canvas c;
  const double top = heading(c, title, note, width);
  std::vector<std::string> named = servers;
  named.insert(named.end(), single.begin(), single.end());
  const double right = width - legend_width(named);
  axis x = log_x ? log_axis(x_lo, x_hi) : linear_axis(x_lo, x_hi, 6);
  x.from_px = axis_space + 10;
  x.to_px = right - 10;
  axis y = linear_axis(0, most, 8);
  y.from_px = top + 240;
  y.to_px = top;
  value_axis_left(c, y, axis_space, right, "round trips per second");
  axis_below(c, x, top, y.from_px, x_title);
  for (const series* s : lines) {
    const look& l = style.of(s->server);
    std::string path;
    for (const point& p : s->points) {
      path += fmt::format("{}{:.1f} {:.1f}", path.empty() ? "M" : "L", x.at(p.x), y.at(p.rps));
    }
    c.put("<path d=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"{}/>\n", path, l.colour, dash_attribute(l));
    for (const point& p : s->points) {
      marker(c, x.at(p.x), y.at(p.rps), 3.5, l, fmt::format("{} at {}: {} rps", s->server, p.scenario, figure(p.rps)));
    }
  }
  double legend_bottom = legend(c, servers, style, right + 10, top + 6, legend_sample::line);
  if (!single.empty()) {
    c.put("<text x=\"{:.1f}\" y=\"{:.1f}\" fill=\"#555\">one point, no line:</text>\n", right + 10,
          legend_bottom + 10);
    for (const std::string& s : single) {
      legend_bottom += 17;
      c.put("<text x=\"{:.1f}\" y=\"{:.1f}\" fill=\"#555\">{}</text>\n", right + 44, legend_bottom + 10,
            xml_escape(s));
    }
  }
  return panel{width, std::max(y.from_px + below_plot, legend_bottom + 20), c.take()};
}

// The unpaced 64-byte ping-pong scenarios of a single server (one message in
// flight per connection), where only the number of connections, active or
// idle, changes.
bool in_sweep(const scenario& s) {
  return s.size == 64 && s.pipeline == 1 && s.rate == 0 && s.workers == 0 && !s.hold &&
         s.counted_round_trips == 0;
}

// Per server, rps at each scenario `x_of` places (nothing: not on this line);
// one point per x, the catalogue's first scenario there. A run the load
// generator saw errors in has no point: a server that refused connections
// (a select loop beyond FD_SETSIZE) served fewer than the scenario's.
std::vector<series> sweep(const std::vector<row>& rows,
                          const std::function<std::optional<double>(const scenario&)>& x_of) {
  std::vector<series> out;
  for (const row* r : pick(rows, [&](const scenario& s) { return in_sweep(s) && x_of(s); },
                           [](const row& r) { return r.rps.has_value() && r.errors == 0; })) {
    const double x = *x_of(*find_scenario(r->scenario));
    auto line = std::find_if(out.begin(), out.end(), [&](const series& s) { return s.server == r->server; });
    if (line == out.end()) line = out.insert(out.end(), series{r->server, {}});
    const bool taken = std::any_of(line->points.begin(), line->points.end(), [&](const point& p) { return p.x == x; });
    if (!taken) line->points.push_back({x, *r->rps, r->scenario});
  }
  // Sorted by x: the catalogue need not list a sweep in order.
  for (series& s : out) {
    std::sort(s.points.begin(), s.points.end(), [](const point& a, const point& b) { return a.x < b.x; });
  }
  return out;
}

// The panels stacked under a title and a line that says what the colours
// and line styles mean.
std::string whole(const std::vector<std::vector<panel>>& stacked, double width, const std::string& title,
                  const std::string& key) {
  canvas top;
  const double key_bottom = heading(top, title, key, width);
  canvas body;
  body.put("<g transform=\"translate(16 10)\">\n{}</g>\n", top.take());
  double y = key_bottom + 10;
  for (const auto& line : stacked) {
    double x = 16, tallest = 0;
    for (const panel& p : line) {
      body.put("<g transform=\"translate({:.0f} {:.0f})\">\n{}</g>\n", x, y, p.body);
      x += p.width + gap;
      tallest = std::max(tallest, p.height);
    }
    y += tallest + gap;
  }
  return fmt::format(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0:.0f}\" height=\"{1:.0f}\" viewBox=\"0 0 {0:.0f} {1:.0f}\" "
      "font-family=\"sans-serif\" font-size=\"11\">\n"
      "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n{2}</svg>\n",
      width + 32, y, body.take());
}

}  // namespace

std::vector<double> round_ticks(double lo, double hi, std::size_t max_ticks) {
  if (!std::isfinite(lo) || !std::isfinite(hi)) lo = 0, hi = 1;
  if (hi < lo) std::swap(lo, hi);
  if (!(hi > lo)) hi = lo + std::max(std::fabs(lo), 1.0);
  const double step = trace_view::tick_step(hi - lo, std::max<std::size_t>(max_ticks, 1));
  // Counted, not accumulated, so that 0.1 steps land on 0.3, not 0.30000000000000004 drifting further.
  const double first = std::floor(lo / step + 1e-9);
  const double last = std::ceil(hi / step - 1e-9);
  std::vector<double> ticks;
  for (double n = first; n <= last; ++n) ticks.push_back(n * step);
  return ticks;
}

std::string tick_text(double value, double step) {
  if (!(step > 0) || !std::isfinite(step)) step = std::fabs(value) > 0 ? std::fabs(value) : 1;
  // Millions from a step of 0.1M (not "1500k"), thousands from 1k (not "0.5k").
  double unit = 1;
  const char* suffix = "";
  if (step >= 1e5) {
    unit = 1e6;
    suffix = "M";
  } else if (step >= 1e3) {
    unit = 1e3;
    suffix = "k";
  }
  const double scaled = step / unit;
  if (std::fabs(value / unit) < scaled / 2) return "0";  // no "-0", no "0k"
  const int decimals = std::clamp(static_cast<int>(std::ceil(-std::log10(scaled) - 1e-9)), 0, 6);
  return grouped(value / unit, decimals) + suffix;
}

std::string svg_chart(const std::vector<row>& rows) {
  if (rows.empty()) return whole({}, 400, "Nothing was measured", "");

  std::vector<const row*> every;
  for (const row& r : rows) every.push_back(&r);
  const looks style(servers_of(every));

  // Wide enough for the throughput ratios' groups, and for the two cost
  // ratio panels side by side.
  const auto cost_rows = ratio_rows(rows, ratio_of::cpu);
  const auto counted_rows = ratio_rows(rows, ratio_of::instructions);
  double width = std::max(min_width, ratio_width(ratio_rows(rows, ratio_of::rps)));
  if (!cost_rows.empty() || !counted_rows.empty()) {
    width = std::max(width, 2 * std::max(ratio_width(cost_rows), ratio_width(counted_rows)) + gap);
  }
  const double half = (width - gap) / 2;

  std::vector<std::vector<panel>> stacked;
  auto add = [&](std::vector<std::optional<panel>> line) {
    std::vector<panel> drawn;
    for (auto& p : line) {
      if (p) drawn.push_back(std::move(*p));
    }
    if (!drawn.empty()) stacked.push_back(std::move(drawn));
  };
  add({ratio_panel(rows, ratio_of::rps, width, style)});
  add({ratio_panel(rows, ratio_of::cpu, half, style), ratio_panel(rows, ratio_of::instructions, half, style)});

  for (const scenario& s : scenario_catalogue()) {
    if (s.rate <= 0 || s.workers > 0 || s.hold) continue;
    std::vector<std::pair<std::string, double>> cpu, p99;
    for (const row* r : pick(rows, [&](const scenario& x) { return &x == &s; }, [](const row&) { return true; })) {
      if (r->cpu_us_per_rt) cpu.emplace_back(r->server, *r->cpu_us_per_rt);
      if (r->p99_us) p99.emplace_back(r->server, *r->p99_us);
    }
    const std::string pace = fmt::format("{} connections at {} round trips/s", s.connections, figure(s.rate));
    add({bar_panel(s.name + ": server CPU per round trip, lower is better",
                   "The server's user and system CPU over the run divided by its round trips; " + pace + ".",
                   "µs per round trip", cpu, half, style),
         bar_panel(s.name + ": p99 latency, lower is better",
                   "The 99th percentile of the round-trip time the load generator saw; " + pace + ".", "µs", p99,
                   half, style)});
  }
  for (const scenario& s : scenario_catalogue()) {
    if (s.counted_round_trips == 0 || s.workers > 0) continue;
    std::vector<std::pair<std::string, double>> counted;
    for (const row* r : pick(rows, [&](const scenario& x) { return &x == &s; },
                             [](const row& r) { return r.instructions_per_rt.has_value(); })) {
      counted.emplace_back(r->server, *r->instructions_per_rt);
    }
    add({bar_panel(s.name + ": user-space instructions per round trip, lower is better",
                   fmt::format("Callgrind's count over {} round trips less that over {}, divided by {}; {} "
                               "connections.",
                               figure(2.0 * s.counted_round_trips), figure(s.counted_round_trips),
                               figure(s.counted_round_trips), s.connections),
                   "instructions per round trip", counted, half, style)});
  }

  add({line_panel("Connection sweep: round trips per second against the number of connections",
                  "64-byte ping-pong, as fast as the load generator goes; one line per server, over the scenarios "
                  "measured. Where select's line bends down, its O(n) scan of every descriptor starts to cost.",
                  "connections (log scale)", true,
                  sweep(rows, [](const scenario& s) {
                    return s.idle == 0 && s.connections > 0 ? std::optional<double>(s.connections) : std::nullopt;
                  }),
                  width, style)});
  add({line_panel("An idle crowd: 50 active connections beside idle ones",
                  "64-byte ping-pong on 50 connections while the others stay open and silent; the point at 0 is "
                  "50x64. A mechanism that scans every descriptor per wait loses rps as the crowd grows.",
                  "idle connections beside the 50 active ones", false,
                  sweep(rows, [](const scenario& s) {
                    return s.connections == 50 ? std::optional<double>(s.idle) : std::nullopt;
                  }),
                  width, style)});

  if (stacked.empty()) return whole({}, 400, "Nothing to draw", "No scenario measured has a figure drawn here.");
  std::vector<std::string> scenarios;
  for (const row& r : rows) {
    if (std::find(scenarios.begin(), scenarios.end(), r.scenario) == scenarios.end()) scenarios.push_back(r.scenario);
  }
  return whole(stacked, width,
               fmt::format("switchboard bench: {} servers, {} scenarios", servers_of(every).size(), scenarios.size()),
               "Colour: the mechanism (select blue, epoll red, io_uring green, other servers their own). Solid and "
               "filled: switchboard; dashed and open: the hand-written loop of the same mechanism; dotted: "
               "switchboard with --trace.");
}

}  // namespace switchboard::tools::bench
