// libFuzzer harness for trace-view's reader and renderer
// (tools/trace_view/): arbitrary bytes as a trace file.
//
// Input: the whole input is the file's text; limits are small (64 KiB, depth
// 16, 2,000 events) so that the limits themselves are reached.
//
// Invariants: reading either succeeds or throws trace_error (nothing else
// escapes); what is read draws, as SVG and as HTML, into text that is valid
// UTF-8 without a character XML forbids, whose every '&' starts an entity,
// whose <title>s are balanced, and which never references anything outside
// itself (no http(s):// but the SVG namespace, no <script).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "trace_view/render.hpp"
#include "trace_view/trace_file.hpp"

using namespace switchboard::tools::trace_view;

namespace {

void require(bool invariant) {
  if (!invariant) __builtin_trap();
}

std::size_t count(std::string_view text, std::string_view what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string_view::npos; at = text.find(what, at + what.size())) ++n;
  return n;
}

void check_markup(std::string_view out) {
  std::size_t i = 0;
  while (i < out.size()) {
    const auto byte = static_cast<unsigned char>(out[i]);
    if (byte < 0x80) {
      require(byte >= 0x20 || byte == '\n' || byte == '\t' || byte == '\r');
      if (byte == '&') {
        const std::string_view rest = out.substr(i);
        require(rest.starts_with("&amp;") || rest.starts_with("&lt;") || rest.starts_with("&gt;") ||
                rest.starts_with("&quot;") || rest.starts_with("&#39;"));
      }
      ++i;
      continue;
    }
    std::size_t length = byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : byte >= 0xc0 ? 2 : 0;
    require(length > 0 && i + length <= out.size());
    for (std::size_t k = 1; k < length; ++k) require((static_cast<unsigned char>(out[i + k]) & 0xc0) == 0x80);
    i += length;
  }
  require(count(out, "<title>") == count(out, "</title>"));
  require(count(out, "<svg") == 1 && count(out, "</svg>") == 1);
  require(count(out, "<script") == 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  trace_limits limits;
  limits.max_bytes = 64 << 10;
  limits.max_depth = 16;
  limits.max_events = 2000;
  trace t;
  try {
    t = read_trace(text, limits);
  } catch (const trace_error&) {
    return 0;
  }
  require(t.events <= limits.max_events);
  // The input's text may carry "http://" itself (the tests' traces do not);
  // only the SVG namespace may add one.
  const bool input_has_http = text.find("http") != std::string_view::npos;
  render_options options;
  options.width = 600;
  options.tasks = 8;
  const std::string svg = render(t, options);
  check_markup(svg);
  if (!input_has_http) require(count(svg, "http://") == 1 && count(svg, "https://") == 0);  // xmlns
  options.format = output_format::html;
  options.from_ms = 0.001;
  options.to_ms = 0.5;
  const std::string html = render(t, options);
  check_markup(html);
  if (!input_has_http) require(count(html, "http://") == 0 && count(html, "https://") == 0);
  return 0;
}
