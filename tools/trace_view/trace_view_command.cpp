#include "trace_view/trace_view_command.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include <fmt/core.h>

#include "trace_view/render.hpp"
#include "trace_view/trace_file.hpp"

namespace switchboard::tools {

namespace {

struct trace_view_options {
  std::string file;
  std::string out;
  std::optional<double> from_ms;
  std::optional<double> to_ms;
  std::size_t tasks = trace_view::render_options{}.tasks;
  int width = trace_view::render_options{}.width;
};

bool ends_with(const std::string& text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

int run(const trace_view_options& o) {
  trace_view::render_options render;
  if (ends_with(o.out, ".svg")) {
    render.format = trace_view::output_format::svg;
  } else if (ends_with(o.out, ".html") || ends_with(o.out, ".htm")) {
    render.format = trace_view::output_format::html;
  } else {
    fmt::print(stderr, "trace-view: -o {}: the output's name must end in .svg or .html\n", o.out);
    return exit_usage;
  }
  if (o.from_ms && o.to_ms && *o.to_ms <= *o.from_ms) {
    fmt::print(stderr, "trace-view: --to {} must be after --from {}\n", *o.to_ms, *o.from_ms);
    return exit_usage;
  }
  render.from_ms = o.from_ms;
  render.to_ms = o.to_ms;
  render.tasks = o.tasks;
  render.width = o.width;
  render.title = o.file;

  trace_view::trace t;
  try {
    t = trace_view::read_trace_file(o.file);
  } catch (const trace_view::trace_error& e) {
    fmt::print(stderr, "trace-view: {}: {}\n", o.file, e.what());
    return exit_failure;
  } catch (const std::bad_alloc&) {
    fmt::print(stderr, "trace-view: {}: out of memory reading the trace\n", o.file);
    return exit_failure;
  }
  if (t.cut_short) fmt::print(stderr, "trace-view: {}: warning: {}\n", o.file, *t.cut_short);

  const std::string picture = trace_view::render(t, render);
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> out(std::fopen(o.out.c_str(), "we"), &std::fclose);
  if (!out) {
    fmt::print(stderr, "trace-view: {}: cannot create: {}\n", o.out, std::strerror(errno));
    return exit_failure;
  }
  if (std::fwrite(picture.data(), 1, picture.size(), out.get()) != picture.size() || std::fflush(out.get()) != 0) {
    fmt::print(stderr, "trace-view: {}: cannot write: {}\n", o.out, std::strerror(errno));
    return exit_failure;
  }
  if (std::fclose(out.release()) != 0) {
    fmt::print(stderr, "trace-view: {}: cannot write: {}\n", o.out, std::strerror(errno));
    return exit_failure;
  }
  return 0;
}

}  // namespace

void add_trace_view_command(CLI::App& app, services::command_list& commands) {
  auto options = std::make_shared<trace_view_options>();
  CLI::App* cmd = app.add_subcommand(
      "trace-view", "draw a --trace file as an SVG picture or an HTML page that opens offline in any browser");
  cmd->add_option("FILE", options->file, "the trace file (Chrome trace-event JSON written by --trace)")
      ->required();
  cmd->add_option("-o,--output", options->out,
                  "the picture to write: OUT.svg (an SVG image) or OUT.html (one page holding it)")
      ->required();
  // Up to 10^12 ms (31 years): past that a microsecond no longer shows in a double.
  cmd->add_option("--from", options->from_ms, "start of the window drawn, in ms since the trace's first event")
      ->check(CLI::Range(0.0, 1e12));
  cmd->add_option("--to", options->to_ms, "end of the window drawn, in ms since the trace's first event")
      ->check(CLI::Range(0.0, 1e12));
  cmd->add_option("--tasks", options->tasks,
                  "draw at most N task rows (those with something in the window, in track order); the loop's row "
                  "is always drawn")
      ->check(CLI::Range(std::size_t{1}, std::size_t{10000}))
      ->capture_default_str();
  cmd->add_option("--width", options->width, "the picture's width in pixels")
      ->check(CLI::Range(400, 20000))
      ->capture_default_str();
  cmd->footer(
      "Each row is a task (the loop's at the bottom): running stretches filled, waits hatched and labelled where\n"
      "the label fits, unfinished waits red, at-once operations as ticks; hover a shape for its full text.\n"
      "Shapes under a pixel wide merge, so a huge trace still makes a bounded picture: --from/--to zoom in.\n"
      "Reads files up to 512 MiB and 5,000,000 events. A file cut short (SIGKILL) is drawn up to the cut,\n"
      "with a warning. Exit status: 0 drawn, 1 the trace cannot be read or the picture written, 2 usage.");
  commands.push_back({cmd, [options] { return run(*options); }});
}

}  // namespace switchboard::tools
