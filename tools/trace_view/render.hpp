// Draws a trace (trace_file.hpp) as one self-contained SVG picture, or an
// HTML page holding it: one row per task, the loop at the bottom, time left
// to right. What is drawn is bounded whatever the trace's size: shapes
// narrower than a pixel merge, so a row holds a few shapes per pixel column.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "trace_view/trace_file.hpp"

namespace switchboard::tools::trace_view {

enum class output_format { svg, html };

struct render_options {
  output_format format = output_format::svg;
  std::optional<double> from_ms;  // the window, in ms since the trace's first event
  std::optional<double> to_ms;
  std::size_t tasks = 64;         // task rows at most (the loop's row comes on top of them)
  int width = 1600;               // the picture's width in pixels
  std::size_t max_flows = 2000;   // more flow arrows than this in the window: none drawn
  std::string title;              // the heading, usually the file's name
};

// The picture; never throws for any trace read_trace returns.
std::string render(const trace& t, const render_options& options);

// A round step for at most `max_ticks` ticks over `span_us`: 1, 2 or 5 × 10^k µs.
double tick_step(double span_us, std::size_t max_ticks);

struct tick {
  double at_us = 0;
  std::string label;  // "0 µs", "500 µs", "1.5 ms", "2 s"
};
// The ticks from `from_us` to `to_us` (times since the trace's start).
std::vector<tick> choose_ticks(double from_us, double to_us, std::size_t max_ticks);
// `at_us` in the unit that suits `step_us` (µs below 1 ms, ms below 1 s, s).
std::string tick_label(double at_us, double step_us);

// `text` made safe for XML text and attributes: markup characters as
// entities, invalid UTF-8 and characters XML forbids as U+FFFD.
std::string xml_escape(std::string_view text);

}  // namespace switchboard::tools::trace_view
