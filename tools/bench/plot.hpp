// The benchmark's picture (switchboard bench --plot): one SVG of stacked
// panels drawn from the summarized rows, each left out when the run did not
// measure what it shows.
//   - switchboard against the hand-written loop of the same mechanism: the
//     median ratio over pairs with min-max whiskers and a line at 1.0, in rps
//     (higher is better) and, apart, in CPU or instructions per round trip
//     (lower is better);
//   - every server's CPU per round trip and p99 at a paced rate, and its
//     instructions per round trip under callgrind;
//   - rps against the number of connections, and 50 active connections beside
//     a growing idle crowd, as one line per server.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "bench/bench_core.hpp"

namespace switchboard::tools::bench {

// Round values 1, 2 or 5 x 10^k apart, at most about `max_ticks` steps, from
// at or below `lo` to at or above `hi`.
std::vector<double> round_ticks(double lo, double hi, std::size_t max_ticks);

// A tick's value as few characters show it at that step: "0", "20k", "1.5M",
// "0.9", "250".
std::string tick_text(double value, double step);

// The picture; a small one saying so when nothing was measured.
std::string svg_chart(const std::vector<row>& rows);

}  // namespace switchboard::tools::bench
