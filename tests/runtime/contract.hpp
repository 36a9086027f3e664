// What the backend contract tests share: an operation held in each state a
// backend can hold it in, and what its coroutine saw when it resumed.
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include <switchboard/net.hpp>
#include <switchboard/runtime.hpp>
#include <switchboard/task.hpp>

#include "../support/async.hpp"
#include "../support/stream_pair.hpp"

namespace switchboard::testing {

// The states an operation can be in when something ends it early.
enum class state {
  at_once,        // ended before it starts: completes without waiting
  parked_read,    // a read on an idle socket (readiness FIFO; recv SQE on io_uring)
  parked_accept,  // an accept with nobody connecting
  connecting,     // a connect whose SYN the listener drops (its queue is full)
  partial_write,  // write_all part of the way into a peer that does not read
  mid_splice,     // send_file part of the way (io_uring: file -> pipe -> socket)
  starved,        // receive() with every buffer of the pool lent out
  waiting_ready,  // wait_ready(POLLIN): a plain readiness wait (poll_add on io_uring)
};
inline constexpr state every_state[] = {state::at_once,       state::parked_read, state::parked_accept,
                                        state::connecting,    state::partial_write, state::mid_splice,
                                        state::starved,       state::waiting_ready};
const char* name(state s);

// What the coroutine of one operation saw.
struct seen {
  int resumed = 0;
  std::error_code error;
  std::size_t transferred = 0;  // bytes it moved, also when it failed part of the way
  std::string bytes;            // what a read or receive got
};

// Receive buffers the scene's runtime may lend: few, so that `starved` is cheap.
inline constexpr std::size_t scene_receive_buffers = 4;
inline runtime_options scene_options() { return {.receive_buffers = scene_receive_buffers}; }

// Every descriptor the states need, set up on the runtime under test (made
// with scene_options()). Owned through the runtime, so closing it is the
// supported way.
class scene {
 public:
  static task<std::unique_ptr<scene>> make();
  ~scene();

  // Starts the operation of `s` and records what its coroutine sees.
  task<void> operate(state s, seen& out);
  // Closes, through the runtime, what the operation of `s` waits on.
  void close(state s);
  // After the operation ended: its peer got exactly the bytes it reported
  // moving (the transfers are closed for that), and a starved receive's byte
  // is still there to read.
  task<void> verify(state s, const seen& out);

  static constexpr std::size_t payload_size = 4 << 20;

 private:
  scene() = default;
  connected_pair at_once_, read_, write_, splice_, starved_, ready_;
  std::vector<connected_pair> holders_;  // each holds one lent buffer
  std::vector<buffer> held_;
  listener idle_;
  listener full_;        // backlog 0 and one connection waiting: SYNs are dropped
  stream queued_;        // that waiting connection's client side
  unique_fd connecting_; // the socket whose connect waits
  int file_ = -1;
  std::string file_path_;
  std::string payload_;
};

// The bytes written and spliced: position-dependent, so a lost or repeated
// byte shows.
std::string pattern(std::size_t size);

// Opens /dev/null until every number below `fd` is taken, so that the next
// descriptor the process gets is `fd` once it is closed. Returns what it opened.
std::vector<int> fill_numbers_below(int fd);
void close_all(const std::vector<int>& fds);

// The descriptors this process holds now.
std::size_t open_fds_now();

}  // namespace switchboard::testing
