// trace-view's pieces (tools/trace_view/): the JSON reader on good and bad
// text, the trace model it fills, the round ticks of the time axis, XML
// escaping, and the bound on what a huge trace draws.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include <fmt/core.h>

#include "trace_view/json.hpp"
#include "trace_view/render.hpp"
#include "trace_view/trace_file.hpp"

using namespace switchboard::tools::trace_view;

namespace {

std::size_t count(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size())) ++n;
  return n;
}

const char* const small_trace = R"j({"displayTimeUnit":"ms","traceEvents":[
{"ph":"M","name":"process_name","pid":1,"args":{"name":"switchboard (epoll)"}},
{"ph":"M","name":"thread_name","pid":1,"tid":0,"args":{"name":"loop"}},
{"ph":"M","name":"thread_sort_index","pid":1,"tid":0,"args":{"sort_index":1000000}},
{"ph":"M","name":"thread_name","pid":1,"tid":2,"args":{"name":"echo connection #1"}},
{"ph":"M","name":"thread_name","pid":1,"tid":1,"args":{"name":"main"}},
{"ph":"X","name":"running","cat":"run","pid":1,"tid":1,"ts":1.5,"dur":20.25},
{"ph":"i","s":"t","name":"write_all 5 B fd 6","cat":"at_once","pid":1,"tid":2,"ts":10,"args":{"result":"5 B","event":"completed at once"}},
{"ph":"s","name":"resume","cat":"flow","id":1,"pid":1,"tid":0,"ts":120},
{"ph":"X","name":"read_some 16384 B fd 9","cat":"wait","pid":1,"tid":2,"ts":21.75,"dur":98.25,"args":{"result":"64 B","event":"epoll_wait \u2192 EPOLLIN fd 9"}},
{"ph":"f","bp":"e","name":"resume","cat":"flow","id":1,"pid":1,"tid":2,"ts":121},
{"ph":"X","name":"receive fd 7","cat":"wait","pid":1,"tid":1,"ts":22,"dur":0,"args":{"unfinished":true}},
{"ph":"X","name":"turn","cat":"loop","pid":1,"tid":0,"ts":21.9,"dur":103,"args":{"timers fired":0,"coroutines resumed":1}},
{"ph":"X","name":"epoll wait","cat":"loop","pid":1,"tid":0,"ts":22,"dur":97,"args":{"timeout":"none","events":1}},
{"ph":"i","s":"g","name":"trace limit reached (14 events); tracing stopped","cat":"trace","pid":1,"tid":0,"ts":130}
]}
)j";

std::string error_of(const std::string& text, const trace_limits& limits = {}) {
  try {
    read_trace(text, limits);
  } catch (const trace_error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("the JSON reader takes every kind of value and every escape", "[trace-view][json]") {
  const json_value v = parse_json(
      R"( {"a": [1, -0.5, 2e3, 0, true, false, null], "s": "q\"b\\s\/\b\f\n\r\t\u00e9\u20ac\ud83d\ude00", "e": {}} )");
  REQUIRE(v.is_object());
  const json_value* a = v.find("a");
  REQUIRE(a);
  REQUIRE(a->items.size() == 7);
  CHECK(a->items[0].number == 1);
  CHECK(a->items[1].number == -0.5);
  CHECK(a->items[2].number == 2000);
  CHECK(a->items[4].boolean);
  CHECK(a->items[6].type == json_value::kind::null);
  CHECK(v.find("s")->text == "q\"b\\s/\b\f\n\r\t\u00e9\u20ac\U0001F600");
  CHECK(v.find("e")->is_object());
  CHECK(v.find("missing") == nullptr);
  CHECK(parse_json("\"caf\xc3\xa9\"").text == "caf\xc3\xa9");
}

TEST_CASE("the JSON reader refuses malformed text and tells a cut from a fault", "[trace-view][json]") {
  struct bad {
    std::string text;
    bool at_end;
  };
  for (const bad& b : std::vector<bad>{
           {"", true},
           {"[1, 2", true},
           {"{\"a\": \"unterminated", true},
           {"\"\\u12", true},
           {"\"\\ud83d", true},
           {"tru", true},
           {"[1 2]", false},
           {"{\"a\" 1}", false},
           {"{a: 1}", false},
           {"[1,]", false},
           {"01", false},
           {"1.", true},
           {"-", true},
           {"1e", true},
           {"+1", false},
           {"NaN", false},
           {"1e999", false},
           {"\"\\x\"", false},
           {"\"\\ud800x\"", false},
           {"\"\\ude00\"", false},
           {"\"\\ud800\\u0041\"", false},
           {"\"a\tb\"", false},
           {"\"\xff\"", false},
           {"\"\xc0\xaf\"", false},
           {"\"\xed\xa0\x80\"", false},
           {"[] []", false},
       }) {
    INFO("text: " << b.text);
    try {
      parse_json(b.text);
      FAIL("parsed");
    } catch (const json_error& e) {
      CHECK(e.at_end() == b.at_end);
    }
  }
}

TEST_CASE("the JSON reader stops at its nesting limit", "[trace-view][json]") {
  const auto nested = [](int depth) { return std::string(depth, '[') + std::string(depth, ']'); };
  CHECK_NOTHROW(parse_json(nested(64)));
  CHECK_THROWS_WITH(parse_json(nested(65)), Catch::Contains("nested deeper than 64 levels"));
  CHECK_NOTHROW(parse_json(nested(3), 3));
  CHECK_THROWS_AS(parse_json(nested(4), 3), json_error);
  // A million levels is refused, not a stack overflow.
  CHECK_THROWS_AS(parse_json(nested(1'000'000)), json_error);
}

TEST_CASE("a trace's tracks come in thread_sort_index order with the loop last", "[trace-view][trace]") {
  const trace t = read_trace(small_trace);
  CHECK(t.process == "switchboard (epoll)");
  CHECK(t.events == 14);
  CHECK_FALSE(t.cut_short);
  REQUIRE(t.tracks.size() == 3);
  CHECK(t.tracks[0].name == "main");
  CHECK(t.tracks[1].name == "echo connection #1");
  CHECK(t.tracks[2].name == "loop");
  CHECK(t.tracks[2].tid == 0);
  CHECK(t.begin == 1.5);
  CHECK(t.end == Approx(130));

  const track& connection = t.tracks[1];
  REQUIRE(connection.slices.size() == 1);
  CHECK(connection.slices[0].kind == slice_kind::wait);
  CHECK(connection.slices[0].result == "64 B");
  CHECK(connection.slices[0].event == "epoll_wait \u2192 EPOLLIN fd 9");
  REQUIRE(connection.instants.size() == 1);
  CHECK(connection.instants[0].result == "5 B");

  const track& main = t.tracks[0];
  REQUIRE(main.slices.size() == 2);
  CHECK(main.slices[0].kind == slice_kind::running);
  CHECK(main.slices[1].unfinished);

  REQUIRE(t.tracks[2].slices.size() == 2);
  CHECK(t.tracks[2].slices[0].kind == slice_kind::turn);
  CHECK(t.tracks[2].slices[1].kind == slice_kind::loop_wait);
  REQUIRE(t.flows.size() == 1);
  CHECK(t.flows[0].from_tid == 0);
  CHECK(t.flows[0].to_tid == 2);
  REQUIRE(t.global.size() == 1);
}

TEST_CASE("a trace event without the fields it needs is an error naming its line", "[trace-view][trace]") {
  const auto one = [](const std::string& event) { return "{\"traceEvents\":[\n{\"ph\":\"M\",\"name\":\"x\"},\n" + event + "]}"; };
  CHECK(error_of(one(R"({"ph":"X","name":"a","tid":1,"ts":0})")) == "line 3: event 2: a \"X\" event without \"dur\"");
  CHECK(error_of(one(R"({"ph":"X","name":"a","tid":"1","ts":0,"dur":1})")) ==
        "line 3: event 2: \"tid\" is a string, not a number");
  CHECK(error_of(one(R"({"ph":"X","name":"a","tid":1.5,"ts":0,"dur":1})")) ==
        "line 3: event 2: \"tid\" is not a whole number from 0 to 2^53 (1.5)");
  CHECK(error_of(one(R"({"ph":"X","name":"a","tid":1,"ts":0,"dur":-1})")) == "line 3: event 2: \"dur\" is negative (-1)");
  CHECK(error_of(one(R"({"ph":"X","name":7,"tid":1,"ts":0,"dur":1})")) == "line 3: event 2: \"name\" is a number, not a string");
  CHECK(error_of(one(R"({"ph":"X","name":"a","tid":1,"ts":1e16,"dur":1})")) ==
        "line 3: event 2: \"ts\" is out of range (1e+16)");
  CHECK(error_of(one(R"({"ph":"X","name":"a","tid":1,"ts":0,"dur":1,"args":[]})")) ==
        "line 3: event 2: \"args\" is an array, not an object");
  CHECK(error_of(one(R"({"ph":"M","name":"thread_name","tid":1})")) ==
        "line 3: event 2: a thread_name event without \"args\"");
  CHECK(error_of(one(R"({"name":"a"})")) == "line 3: event 2: an event without \"ph\"");
  CHECK(error_of(one("17")) == "line 3: event 2: the event is a number, not an object");
  CHECK(error_of("{\"traceEvents\":{}}") == "\"traceEvents\" is not an array");
  CHECK(error_of("{\"other\":[]}") == "no \"traceEvents\" array");
  CHECK(error_of("") == "the file is empty");
  CHECK(error_of("   \n") == "the file is empty");
  CHECK(error_of("\"a string\"") == "line 1: expected '{' (a trace is a JSON object with a \"traceEvents\" array), found '\"'");
  CHECK(error_of("{\"traceEvents\":[]}\n{}") == "line 2: more text after the trace's closing brace");
  // Unknown fields and events are passed over.
  CHECK(error_of(one(R"({"ph":"C","name":"counter","args":{"n":1}})")) == "(no error)");
  CHECK(error_of(one(R"({"ph":"X","name":"a","tid":1,"ts":0,"dur":1,"new":{"x":[1]}})")) == "(no error)");
}

TEST_CASE("a trace over the limits is refused, saying which", "[trace-view][trace]") {
  trace_limits small;
  small.max_bytes = 100;
  CHECK(error_of(std::string(101, ' '), small) == "the file is 101 B, over the 100 B limit");
  CHECK(trace_limits{}.max_bytes == std::size_t{512} << 20);
  CHECK(size_text(std::size_t{512} << 20) == "512 MiB");
  trace_limits few;
  few.max_events = 3;
  CHECK(error_of(small_trace, few) == "more than 3 events");
  trace_limits shallow;
  shallow.max_depth = 1;  // an event's "args" is one deeper
  CHECK_THAT(error_of(small_trace, shallow), Catch::Contains("nested deeper than 1 levels"));
}

TEST_CASE("a trace cut short is read up to the cut, with a warning", "[trace-view][trace]") {
  const std::string text = small_trace;
  // Cut in the middle of the 9th event, on line 10.
  const auto line10 = text.find("\"read_some");
  const trace t = read_trace(text.substr(0, line10 + 10));
  REQUIRE(t.cut_short);
  CHECK_THAT(*t.cut_short, Catch::Contains("cut short (line 10)"));
  CHECK(t.events == 8);
  CHECK(t.tracks.size() == 3);
  // Cut after a comma, and after the array's end.
  CHECK(read_trace(text.substr(0, text.find("\n", line10) + 1)).events == 9);
  CHECK(read_trace(text.substr(0, text.rfind(']') + 1)).cut_short);
  // Cut before any event: nothing to draw.
  CHECK_THAT(error_of(text.substr(0, 30)), Catch::Contains("cut short"));
  CHECK_THAT(error_of("{\"traceEvents\":[{\"ph\":"), Catch::Contains("cut short"));
  // Garbage is not a cut.
  CHECK_THAT(error_of(text.substr(0, line10) + "@@@"), Catch::Contains("expected a value, found '@'"));
}

TEST_CASE("tick steps are 1, 2 or 5 times a power of ten", "[trace-view][ticks]") {
  CHECK(tick_step(1000, 10) == 100);
  CHECK(tick_step(1000, 4) == 500);
  CHECK(tick_step(1000, 3) == 500);
  CHECK(tick_step(1000, 2) == 500);
  CHECK(tick_step(1001, 2) == 1000);
  CHECK(tick_step(7, 10) == 1);
  CHECK(tick_step(15, 10) == 2);
  CHECK(tick_step(0.3, 3) == Approx(0.1));
  CHECK(tick_step(3e6, 6) == 5e5);
  CHECK(tick_step(3.6e9, 10) == 5e8);
  CHECK(tick_step(0, 10) == 1);
  for (double span : {0.05, 0.7, 13.0, 999.0, 12345.0, 8.8e7}) {
    for (std::size_t n : {2u, 5u, 17u}) {
      INFO(span << " µs in " << n << " ticks");
      const double step = tick_step(span, n);
      CHECK(span / step <= static_cast<double>(n) + 1e-9);
      CHECK(span / step > static_cast<double>(n) / 5 - 1e-9);
    }
  }
}

TEST_CASE("tick labels carry a unit that suits the step", "[trace-view][ticks]") {
  CHECK(tick_label(0, 100) == "0 µs");
  CHECK(tick_label(1500, 500) == "1500 µs");
  CHECK(tick_label(2000, 1000) == "2 ms");
  CHECK(tick_label(1500, 100) == "1500 µs");
  CHECK(tick_label(2.5e6, 5e5) == "2500 ms");
  CHECK(tick_label(3e6, 1e6) == "3 s");
  CHECK(tick_label(0.5, 0.5) == "0.5 µs");
  CHECK(tick_label(0.02, 0.01) == "0.02 µs");
  CHECK(tick_label(-1e-12, 1) == "0 µs");

  const std::vector<tick> ticks = choose_ticks(0, 1000, 10);
  REQUIRE(ticks.size() == 11);
  CHECK(ticks.front().label == "0 µs");
  CHECK(ticks[3].label == "300 µs");
  CHECK(ticks.back().label == "1000 µs");
  const std::vector<tick> offset = choose_ticks(150, 1000, 4);
  REQUIRE(offset.size() == 2);
  CHECK(offset[0].at_us == 500);
  CHECK(offset[1].label == "1000 µs");
  const std::vector<tick> seconds = choose_ticks(0, 10e6, 5);
  REQUIRE(seconds.size() == 6);
  CHECK(seconds[1].label == "2 s");
  CHECK(choose_ticks(5, 5, 10).empty());
  CHECK(choose_ticks(1e15, 1e15 + 1, 10).size() <= 12);
}

TEST_CASE("text from the trace is escaped for XML", "[trace-view][render]") {
  CHECK(xml_escape("a<b>&\"c'") == "a&lt;b&gt;&amp;&quot;c&#39;");
  CHECK(xml_escape("caf\xc3\xa9 \xe2\x86\x92") == "caf\xc3\xa9 \xe2\x86\x92");
  CHECK(xml_escape(std::string("nul\0x", 5)) == "nul\uFFFDx");
  CHECK(xml_escape("\x01\x1f\x7f") == "\uFFFD\uFFFD\uFFFD");
  CHECK(xml_escape("\xff") == "\uFFFD");
  CHECK(xml_escape("\xc3") == "\uFFFD");
  CHECK(xml_escape("\xef\xbf\xbe") == "\uFFFD\uFFFD\uFFFD");
  CHECK(xml_escape("tab\tnewline\n") == "tab\tnewline\n");
}

TEST_CASE("the picture names every track and labels the waits that fit", "[trace-view][render]") {
  const trace t = read_trace(small_trace);
  render_options options;
  const std::string svg = render(t, options);
  CHECK(svg.starts_with("<?xml"));
  CHECK(count(svg, "xmlns=\"http://www.w3.org/2000/svg\"") == 1);
  for (const char* name : {">main<", ">echo connection #1<", ">loop<"}) CHECK(count(svg, name) == 1);
  CHECK(count(svg, "read_some 16384 B fd 9 \u2192 64 B</text>") == 1);
  CHECK(count(svg, "class=\"wait unfinished\"") == 2);  // the legend's and the receive's
  CHECK(count(svg, "class=\"tick\"") == 2);  // the legend's and the write's
  CHECK(count(svg, "class=\"flow\"") == 1);
  CHECK(count(svg, "class=\"global\"") == 1);
  CHECK(count(svg, "trace limit reached") == 2);  // its line's title and its note
  CHECK(count(svg, "<title>") == count(svg, "</title>"));

  options.format = output_format::html;
  options.title = "<lunch>.json";
  const std::string html = render(t, options);
  CHECK(html.starts_with("<!DOCTYPE html>"));
  CHECK(count(html, "<svg") == 1);
  CHECK(count(html, "http") == 0);
  CHECK(count(html, "&lt;lunch&gt;.json") == 2);
}

TEST_CASE("a window and --tasks pick the rows drawn", "[trace-view][render]") {
  const trace t = read_trace(small_trace);
  render_options options;
  options.tasks = 1;
  const std::string first = render(t, options);
  CHECK(count(first, ">main<") == 1);
  CHECK(count(first, ">echo connection #1<") == 0);
  CHECK(count(first, ">loop<") == 1);
  CHECK(count(first, "1 more task track not drawn") == 1);
  // 0.03 ms to 0.05 ms after the start (1.5 µs): only the connection's read waits then.
  options.tasks = 64;
  options.from_ms = 0.03;
  options.to_ms = 0.05;
  const std::string window = render(t, options);
  CHECK(count(window, ">main<") == 0);
  CHECK(count(window, ">echo connection #1<") == 1);
}

TEST_CASE("a huge trace draws a bounded number of shapes", "[trace-view][render]") {
  std::string text = "{\"traceEvents\":[\n{\"ph\":\"M\",\"name\":\"thread_name\",\"tid\":1,\"args\":{\"name\":\"busy\"}}";
  for (int i = 0; i < 100'000; ++i) {
    text += fmt::format(",\n{{\"ph\":\"X\",\"name\":\"running\",\"tid\":1,\"ts\":{},\"dur\":0.5}}", i);
    text += fmt::format(",\n{{\"ph\":\"X\",\"name\":\"read_some 1 B fd 5\",\"cat\":\"wait\",\"tid\":1,\"ts\":{},\"dur\":0.5}}",
                        i + 0.5);
  }
  // One wide wait in the middle stays a shape of its own, with its label.
  text += ",\n{\"ph\":\"X\",\"name\":\"sleep 1 s\",\"cat\":\"wait\",\"tid\":1,\"ts\":100000,\"dur\":100000,\"args\":{\"result\":\"timed out\"}}";
  text += "\n]}\n";
  const trace t = read_trace(text);
  render_options options;
  options.width = 1000;
  const std::string svg = render(t, options);
  CHECK(count(svg, "<rect") < 3 * 1000);
  CHECK(count(svg, "merged") >= 1);
  CHECK(count(svg, "sleep 1 s \u2192 timed out</text>") == 1);
  CHECK(svg.size() < 2'000'000);
}

TEST_CASE("an empty trace or a window past its end still draws a picture", "[trace-view][render]") {
  const trace empty = read_trace("{\"traceEvents\":[]}");
  const std::string svg = render(empty, {});
  CHECK(count(svg, "the trace holds no timed events") == 1);
  CHECK(count(svg, "</svg>") == 1);

  const trace t = read_trace(small_trace);
  render_options past;
  past.from_ms = 1e6;
  const std::string later = render(t, past);
  CHECK(count(later, ">loop<") == 1);
  CHECK(count(later, ">main<") == 0);
  CHECK(count(later, "nan") == 0);
  CHECK(count(later, "inf") == 0);
}
