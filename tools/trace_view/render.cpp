#include "trace_view/render.hpp"

#include <algorithm>
#include <cmath>

#include <fmt/core.h>

namespace switchboard::tools::trace_view {

namespace {

// The layout, in pixels. Text is monospace so that its width is known
// without a font: 10 px type is 6 px a character.
constexpr double margin = 8;
constexpr double label_width = 250;
constexpr double row_height = 20;
constexpr double row_pitch = 22;
constexpr double char_width = 6;
constexpr double rows_top = 84;
constexpr double note_height = 14;
constexpr std::size_t max_label_chars = 40;
constexpr std::size_t max_names_listed = 4;

std::size_t code_points(std::string_view text) {
  std::size_t n = 0;
  for (const char c : text) {
    if ((static_cast<unsigned char>(c) & 0xc0) != 0x80) ++n;
  }
  return n;
}

// The first `n` code points of `text` followed by "…" when it is longer.
std::string shortened(std::string_view text, std::size_t n) {
  if (code_points(text) <= n) return std::string(text);
  std::size_t kept = 0;
  std::size_t i = 0;
  for (; i < text.size(); ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xc0) != 0x80 && kept++ == n - 1) break;
  }
  return std::string(text.substr(0, i)) + "\u2026";
}

bool fits(std::string_view text, double width) {
  return static_cast<double>(code_points(text)) * char_width + 6 <= width;
}

// A duration in µs, as a person reads it.
std::string duration_text(double us) {
  if (us < 1000) return fmt::format("{:.1f} µs", us);
  if (us < 1e6) return fmt::format("{:.3f} ms", us / 1e3);
  return fmt::format("{:.3f} s", us / 1e6);
}

// The time from the trace's start, in ms.
std::string time_text(double us) { return fmt::format("{:.3f} ms", us / 1e3); }

struct window {
  double from = 0;  // µs, on the file's clock
  double to = 1;
  double begin = 0;  // the trace's start, for the times shown
  double plot_x = 0;
  double plot_width = 1;

  double x(double t) const {
    const double clamped = std::clamp(t, from, to);
    return plot_x + (clamped - from) / (to - from) * plot_width;
  }
  bool shows(double t0, double t1) const { return t1 >= from && t0 <= to; }
};

// One drawn shape: a slice, or slices too narrow to draw one by one.
struct box {
  double x0 = 0;
  double x1 = 0;
  std::size_t first = 0;  // index of its first slice
  std::size_t count = 0;
  double busy = 0;        // the slices' total duration
  double t0 = 0;
  double t1 = 0;
  bool unfinished = false;
};

// Merges what is under a pixel wide or overlaps: wide slices stay single and
// apart (each at least a pixel), a cluster of narrow ones starts only after a
// wide one or a pixel's gap, so a row gets at most about three boxes a pixel.
template <class Keep>
std::vector<box> boxes_of(const std::vector<slice>& slices, const window& w, Keep keep) {
  std::vector<box> out;
  for (std::size_t i = 0; i < slices.size(); ++i) {
    const slice& s = slices[i];
    if (!keep(s) || !w.shows(s.ts, s.end())) continue;
    const double x0 = w.x(s.ts);
    const double x1 = w.x(s.end());
    const bool wide = x1 - x0 >= 1;
    if (!out.empty()) {
      box& b = out.back();
      const bool overlaps = x0 < b.x1 - 0.01;
      const bool b_wide_single = b.count == 1 && b.x1 - b.x0 >= 1;
      if (overlaps || (!wide && !b_wide_single && x0 - b.x1 < 1)) {
        b.x1 = std::max(b.x1, x1);
        ++b.count;
        b.busy += s.dur;
        b.t1 = std::max(b.t1, s.end());
        b.unfinished = b.unfinished || s.unfinished;
        continue;
      }
    }
    out.push_back({x0, x1, i, 1, s.dur, s.ts, s.end(), s.unfinished});
  }
  return out;
}

class painter {
 public:
  painter(const trace& t, const render_options& options) : t_(t), options_(options) {}

  std::string paint();

 private:
  const trace& t_;
  const render_options& options_;
  window w_;
  std::string out_;
  std::vector<std::string> notes_;

  // fmt::format, not format_to a back_inserter: clang's fuzzing build links
  // the system's g++-built libfmt, whose vformat_to<char> it mangles apart.
  template <class... Args>
  void put(fmt::format_string<Args...> format, Args&&... args) {
    out_ += fmt::format(format, std::forward<Args>(args)...);
  }

  std::string since(double t) const { return time_text(t - w_.begin); }
  void title(const std::string& text) { put("<title>{}</title>", xml_escape(text)); }
  std::string describe(const slice& s) const;
  void slices(const track& row, double y, bool loop);
  void layer(const track& row, double y, slice_kind kind, const char* css, const char* noun);
  void instants(const track& row, double y);
  void axis(double rows_bottom);
};

std::string painter::describe(const slice& s) const {
  std::string text = s.name;
  if (s.unfinished) {
    text += "\nunfinished: still waiting when the trace ended";
  } else if (!s.result.empty()) {
    text += "\n\u2192 " + s.result;
  }
  if (!s.event.empty()) text += "\nby " + s.event;
  text += fmt::format("\n{} from {} to {}", duration_text(s.dur), since(s.ts), since(s.end()));
  return text;
}

void painter::layer(const track& row, double y, slice_kind kind, const char* css, const char* noun) {
  const auto keep = [kind](const slice& s) { return s.kind == kind; };
  const double top = y + 2;
  const double height = row_height - 4;
  for (const box& b : boxes_of(row.slices, w_, keep)) {
    const double width = std::max(b.x1 - b.x0, 1.0);
    put("<g class=\"{}{}\">", css, b.unfinished ? " unfinished" : "");
    const slice& first = row.slices[b.first];
    if (b.count == 1) {
      title(describe(first));
    } else {
      std::string text = fmt::format("{} {} merged (each under a pixel wide)\n{} in all, from {} to {}", b.count, noun,
                                     duration_text(b.busy), since(b.t0), since(b.t1));
      if (kind == slice_kind::wait || kind == slice_kind::other) text += "\nfirst: " + first.name;
      if (b.unfinished) text += "\nsome unfinished";
      title(text);
    }
    put("<rect x=\"{:.2f}\" y=\"{:.1f}\" width=\"{:.2f}\" height=\"{:.1f}\"/>", b.x0, top, width, height);
    if (b.count == 1 && kind != slice_kind::running && kind != slice_kind::turn) {
      std::string label = first.name;
      if (first.unfinished) {
        label += " (unfinished)";
      } else if (!first.result.empty()) {
        label += " \u2192 " + first.result;
      }
      if (!fits(label, width)) label = first.name;
      if (fits(label, width)) put("<text x=\"{:.2f}\" y=\"{:.1f}\">{}</text>", b.x0 + 3, y + 14, xml_escape(label));
    }
    if (b.unfinished) {
      // The open end: an arrowhead at the right edge of what was still waiting.
      const double x = b.x0 + width;
      put("<path class=\"open\" d=\"M{:.2f} {:.1f}l-5 -5v10z\"/>", x, y + row_height / 2);
    }
    put("</g>\n");
  }
}

void painter::slices(const track& row, double y, bool loop) {
  if (loop) {
    layer(row, y, slice_kind::turn, "turn", "turns");
    layer(row, y, slice_kind::loop_wait, "poll", "backend waits");
  } else {
    layer(row, y, slice_kind::wait, "wait", "waits");
    layer(row, y, slice_kind::running, "run", "running stretches");
  }
  layer(row, y, slice_kind::other, "other", "slices");
}

void painter::instants(const track& row, double y) {
  // One tick per pixel column at most.
  std::size_t i = 0;
  const auto& all = row.instants;
  while (i < all.size()) {
    if (!w_.shows(all[i].ts, all[i].ts)) {
      ++i;
      continue;
    }
    const double x = w_.x(all[i].ts);
    std::size_t j = i + 1;
    while (j < all.size() && w_.shows(all[j].ts, all[j].ts) && w_.x(all[j].ts) - x < 1) ++j;
    std::string text;
    if (j - i == 1) {
      const instant& one = all[i];
      text = one.name;
      if (!one.result.empty()) text += "\n\u2192 " + one.result;
      if (!one.event.empty()) text += "\n" + one.event;
      text += "\nat " + since(one.ts);
    } else {
      text = fmt::format("{} at-once events from {} to {}:", j - i, since(all[i].ts), since(all[j - 1].ts));
      for (std::size_t k = i; k < j && k < i + max_names_listed; ++k) text += "\n" + all[k].name;
      if (j - i > max_names_listed) text += "\n\u2026";
    }
    put("<g class=\"tick\">");
    title(text);
    put("<path d=\"M{:.2f} {:.1f}v7\"/></g>\n", x, y + row_height - 8);
    i = j;
  }
}

void painter::axis(double rows_bottom) {
  const double axis_y = rows_top - 6;
  const auto max_ticks = static_cast<std::size_t>(std::max(2.0, w_.plot_width / 90));
  put("<g class=\"axis\"><path d=\"M{:.2f} {:.1f}h{:.2f}\"/>\n", w_.plot_x, axis_y, w_.plot_width);
  for (const tick& k : choose_ticks(w_.from - w_.begin, w_.to - w_.begin, max_ticks)) {
    const double x = w_.x(k.at_us + w_.begin);
    put("<path d=\"M{:.2f} {:.1f}v5\"/><path class=\"grid\" d=\"M{:.2f} {:.1f}V{:.1f}\"/>", x, axis_y - 5, x, axis_y,
        rows_bottom);
    put("<text x=\"{:.2f}\" y=\"{:.1f}\" text-anchor=\"middle\">{}</text>\n", x, axis_y - 8, xml_escape(k.label));
  }
  put("</g>\n");
}

std::string painter::paint() {
  const double width = std::max(options_.width, 400);
  w_.plot_x = margin + label_width;
  w_.plot_width = width - w_.plot_x - margin;
  w_.begin = t_.has_times ? t_.begin : 0;
  w_.from = w_.begin + options_.from_ms.value_or(0) * 1e3;
  w_.to = options_.to_ms ? w_.begin + *options_.to_ms * 1e3 : (t_.has_times ? t_.end : w_.begin);
  // A single instant, or nothing: a microsecond to draw in (more, far from zero,
  // where one would vanish in the double's rounding).
  if (!(w_.to > w_.from)) w_.to = w_.from + std::max(1.0, std::fabs(w_.from) * 1e-9);
  const bool windowed = options_.from_ms || options_.to_ms;

  // The rows: the task tracks with something in the window (all of them for
  // the whole trace), the first `tasks` of them; the loop's last.
  std::vector<const track*> rows;
  std::size_t left_out = 0;
  const track* loop = nullptr;
  for (const track& row : t_.tracks) {
    if (row.tid == 0) {
      loop = &row;
      continue;
    }
    const bool shown = !windowed ||
                       std::any_of(row.slices.begin(), row.slices.end(),
                                   [&](const slice& s) { return w_.shows(s.ts, s.end()); }) ||
                       std::any_of(row.instants.begin(), row.instants.end(),
                                   [&](const instant& i) { return w_.shows(i.ts, i.ts); });
    if (!shown) continue;
    if (rows.size() < options_.tasks) {
      rows.push_back(&row);
    } else {
      ++left_out;
    }
  }
  const std::size_t task_rows = rows.size();
  if (loop) rows.push_back(loop);

  if (t_.cut_short) notes_.push_back("warning: " + *t_.cut_short);
  if (left_out > 0) {
    notes_.push_back(fmt::format("{} more task track{} not drawn (--tasks {} draws the first {}; --from/--to picks a window)",
                                 left_out, left_out == 1 ? "" : "s", options_.tasks, options_.tasks));
  }
  if (!t_.has_times) notes_.push_back("the trace holds no timed events");
  std::size_t flows_in_window = 0;
  for (const flow& f : t_.flows) {
    if (w_.shows(std::min(f.from_ts, f.to_ts), std::max(f.from_ts, f.to_ts))) ++flows_in_window;
  }
  const bool draw_flows = flows_in_window <= options_.max_flows;
  if (!draw_flows) {
    notes_.push_back(fmt::format("{} flow arrows in the window: not drawn over {} (pick a shorter window with --from/--to)",
                                 flows_in_window, options_.max_flows));
  }
  for (std::size_t k = 0; k < t_.global.size() && k < max_names_listed; ++k) {
    notes_.push_back(fmt::format("at {}: {}", since(t_.global[k].ts), t_.global[k].name));
  }
  if (t_.global.size() > max_names_listed) notes_.push_back(fmt::format("{} more global events", t_.global.size() - max_names_listed));

  const double rows_bottom = rows_top + static_cast<double>(rows.size()) * row_pitch;
  const double height = rows_bottom + 8 + static_cast<double>(notes_.size()) * note_height + margin;

  put("<svg{} width=\"{:.0f}\" height=\"{:.0f}\" viewBox=\"0 0 {:.0f} {:.0f}\" font-family=\"monospace\" font-size=\"10\">\n",
      options_.format == output_format::svg ? " xmlns=\"http://www.w3.org/2000/svg\"" : "", width, height, width, height);
  put("{}",
      "<style>\n"
      "text{fill:#222;pointer-events:none}\n"
      ".heading{font-size:13px;font-weight:bold}\n"
      ".run rect{fill:#2f6fc4}\n"
      ".wait rect{fill:url(#hatch);stroke:#8fb3e0;stroke-width:0.5}\n"
      ".turn rect{fill:#b8b8b8}\n"
      ".poll rect{fill:url(#hatch-grey)}\n"
      ".other rect{fill:#d9c27a}\n"
      ".unfinished rect{fill:url(#hatch-red);stroke:#c0392b;stroke-width:1;stroke-dasharray:3 2}\n"
      ".open{fill:#c0392b}\n"
      ".tick path{stroke:#d35400;stroke-width:1.2}\n"
      ".global path{stroke:#c0392b;stroke-width:1.5}\n"
      ".flow{stroke:#7d3c98;stroke-width:0.6;opacity:0.5;fill:none}\n"
      ".axis path{stroke:#555;stroke-width:1}\n"
      ".axis .grid{stroke:#e4e4e4}\n"
      ".band{fill:#f6f6f6}\n"
      ".note{fill:#a04000}\n"
      "</style>\n"
      "<defs>\n"
      "<pattern id=\"hatch\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\">"
      "<rect width=\"6\" height=\"6\" fill=\"#dde8f7\"/><path d=\"M0 0V6\" stroke=\"#a9c3e8\" stroke-width=\"2\"/></pattern>\n"
      "<pattern id=\"hatch-grey\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\">"
      "<rect width=\"6\" height=\"6\" fill=\"#efefef\"/><path d=\"M0 0V6\" stroke=\"#d6d6d6\" stroke-width=\"2\"/></pattern>\n"
      "<pattern id=\"hatch-red\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\">"
      "<rect width=\"6\" height=\"6\" fill=\"#fbe3e0\"/><path d=\"M0 0V6\" stroke=\"#eaa79f\" stroke-width=\"2\"/></pattern>\n"
      "</defs>\n"
      "<rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n");

  // The heading, what is shown, and a legend.
  std::string heading = options_.title.empty() ? std::string("trace") : options_.title;
  if (!t_.process.empty()) heading += " \u2014 " + t_.process;
  put("<text class=\"heading\" x=\"{:.0f}\" y=\"20\">{}</text>\n", margin, xml_escape(shortened(heading, 160)));
  put("<text x=\"{:.0f}\" y=\"36\">{}</text>\n", margin,
      xml_escape(fmt::format("{} events, {} task tracks; from {} to {} ({}){}", t_.events,
                             t_.tracks.size() - (loop ? 1 : 0), since(w_.from), since(w_.to),
                             duration_text(w_.to - w_.from), t_.cut_short ? "; CUT SHORT" : "")));
  double lx = margin;
  const auto legend = [&](const char* css, const char* text) {
    put("<g class=\"{}\"><rect x=\"{:.0f}\" y=\"44\" width=\"18\" height=\"10\"/></g>", css, lx);
    put("<text x=\"{:.0f}\" y=\"53\">{}</text>\n", lx + 22, text);
    lx += 22 + static_cast<double>(code_points(text)) * char_width + 14;
  };
  legend("run", "running");
  legend("wait", "waiting (label \u2192 result)");
  legend("wait unfinished", "unfinished");
  legend("turn", "loop turn");
  legend("poll", "backend wait");
  put("<g class=\"tick\"><path d=\"M{:.0f} 45v9\"/></g><text x=\"{:.0f}\" y=\"53\">completed at once</text>\n", lx + 4,
      lx + 12);

  axis(rows_bottom);

  // Rows: a band, the name, then the shapes.
  for (std::size_t r = 0; r < rows.size(); ++r) {
    const track& row = *rows[r];
    const double y = rows_top + static_cast<double>(r) * row_pitch;
    if (r % 2 == 0) put("<rect class=\"band\" x=\"{:.0f}\" y=\"{:.1f}\" width=\"{:.0f}\" height=\"{:.0f}\"/>\n", margin, y, width - 2 * margin, row_pitch);
    if (r == task_rows && r > 0) put("<path class=\"axis\" d=\"M{:.0f} {:.1f}h{:.0f}\" stroke=\"#555\"/>\n", margin, y, width - 2 * margin);
    put("<g class=\"name\">");
    title(fmt::format("{} (tid {}): {} slices, {} at-once events", row.name, row.tid, row.slices.size(), row.instants.size()));
    put("<text x=\"{:.0f}\" y=\"{:.1f}\">{}</text></g>\n", margin + 2, y + 14, xml_escape(shortened(row.name, max_label_chars)));
    slices(row, y, row.tid == 0);
    instants(row, y);
  }

  // Flow arrows: from the completion on the loop's row to the task's row.
  if (draw_flows && loop) {
    std::vector<std::pair<std::uint64_t, double>> row_of;
    for (std::size_t r = 0; r < rows.size(); ++r) row_of.emplace_back(rows[r]->tid, rows_top + static_cast<double>(r) * row_pitch + row_height / 2);
    const auto y_of = [&](std::uint64_t tid) -> std::optional<double> {
      for (const auto& [id, y] : row_of) {
        if (id == tid) return y;
      }
      return std::nullopt;
    };
    for (const flow& f : t_.flows) {
      if (!w_.shows(std::min(f.from_ts, f.to_ts), std::max(f.from_ts, f.to_ts))) continue;
      const auto y0 = y_of(f.from_tid);
      const auto y1 = y_of(f.to_tid);
      if (!y0 || !y1) continue;
      put("<path class=\"flow\" d=\"M{:.2f} {:.1f}L{:.2f} {:.1f}\"/>\n", w_.x(f.from_ts), *y0, w_.x(f.to_ts), *y1);
    }
  }

  // Global instants (the limit, a second signal): a line across every row.
  for (const instant& g : t_.global) {
    if (!w_.shows(g.ts, g.ts)) continue;
    put("<g class=\"global\">");
    title(fmt::format("{}\nat {}", g.name, since(g.ts)));
    put("<path d=\"M{:.2f} {:.1f}V{:.1f}\"/></g>\n", w_.x(g.ts), rows_top - 6, rows_bottom);
  }

  double ny = rows_bottom + 8 + 10;
  for (const std::string& note : notes_) {
    put("<text class=\"note\" x=\"{:.0f}\" y=\"{:.1f}\">{}</text>\n", margin, ny, xml_escape(note));
    ny += note_height;
  }
  put("</svg>\n");
  return std::move(out_);
}

}  // namespace

double tick_step(double span_us, std::size_t max_ticks) {
  if (!(span_us > 0) || !std::isfinite(span_us) || max_ticks == 0) return 1;
  const double raw = span_us / static_cast<double>(max_ticks);
  const double power = std::pow(10.0, std::floor(std::log10(raw)));
  for (const double m : {1.0, 2.0, 5.0}) {
    if (m * power >= raw * (1 - 1e-9)) return std::max(m * power, 1e-3);
  }
  return std::max(10 * power, 1e-3);
}

std::string tick_label(double at_us, double step_us) {
  double unit = 1;
  const char* name = "µs";
  if (step_us >= 1e6) {
    unit = 1e6;
    name = "s";
  } else if (step_us >= 1e3) {
    unit = 1e3;
    name = "ms";
  }
  const double step = step_us / unit;
  double value = at_us / unit;
  if (std::fabs(value) < step / 2) value = 0;  // no "-0"
  const int decimals = step >= 1 ? 0 : std::min(3, static_cast<int>(std::ceil(-std::log10(step) - 1e-9)));
  return fmt::format("{:.{}f} {}", value, decimals, name);
}

std::vector<tick> choose_ticks(double from_us, double to_us, std::size_t max_ticks) {
  std::vector<tick> ticks;
  if (!(to_us > from_us)) return ticks;
  const double step = tick_step(to_us - from_us, max_ticks);
  const double first = std::ceil(from_us / step - 1e-9);
  // Counted, not accumulated: no drift, and a bounded loop even where
  // `first + n` no longer changes in floating point.
  for (std::size_t n = 0; n <= max_ticks + 1; ++n) {
    const double at = (first + static_cast<double>(n)) * step;
    if (at > to_us + step * 1e-9) break;
    ticks.push_back({at, tick_label(at, step)});
  }
  return ticks;
}

std::string xml_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  const auto replacement = [&] { out += "\uFFFD"; };
  std::size_t i = 0;
  while (i < text.size()) {
    const auto byte = static_cast<unsigned char>(text[i]);
    if (byte < 0x80) {
      switch (text[i]) {
        case '&': out += "&amp;"; break;
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '"': out += "&quot;"; break;
        case '\'': out += "&#39;"; break;
        case '\t':
        case '\n':
        case '\r': out += text[i]; break;
        default:
          if (byte < 0x20 || byte == 0x7f) {
            replacement();
          } else {
            out += text[i];
          }
      }
      ++i;
      continue;
    }
    // A multi-byte character: copied when valid UTF-8 and allowed in XML.
    std::size_t length = 0;
    unsigned cp = 0;
    if (byte >= 0xc2 && byte <= 0xdf) {
      length = 2;
      cp = byte & 0x1fu;
    } else if (byte >= 0xe0 && byte <= 0xef) {
      length = 3;
      cp = byte & 0x0fu;
    } else if (byte >= 0xf0 && byte <= 0xf4) {
      length = 4;
      cp = byte & 0x07u;
    }
    bool valid = length > 0 && i + length <= text.size();
    for (std::size_t k = 1; valid && k < length; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      valid = (next & 0xc0) == 0x80;
      cp = (cp << 6) | (next & 0x3fu);
    }
    valid = valid && !(length == 3 && cp < 0x800) && !(length == 4 && (cp < 0x10000 || cp > 0x10ffff)) &&
            !(cp >= 0xd800 && cp <= 0xdfff) && cp != 0xfffe && cp != 0xffff && !(cp >= 0x80 && cp <= 0x9f);
    if (valid) {
      out.append(text.substr(i, length));
      i += length;
    } else {
      replacement();
      ++i;
    }
  }
  return out;
}

std::string render(const trace& t, const render_options& options) {
  std::string svg = painter(t, options).paint();
  if (options.format == output_format::svg) return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n" + svg;
  std::string title = options.title.empty() ? std::string("trace") : options.title;
  return fmt::format(
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{} \u2014 trace-view</title>\n"
      "<style>body{{margin:0;background:#fff}}</style>\n</head>\n<body>\n{}</body>\n</html>\n",
      xml_escape(title), svg);
}

}  // namespace switchboard::tools::trace_view
