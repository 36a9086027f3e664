#include "protocol.hpp"

#include <fmt/core.h>

namespace switchboard::services::ack {

std::optional<std::size_t> message_end(std::string_view received, bool ended) {
  const std::string_view window = received.substr(0, max_message_length);
  if (const auto lf = window.find('\n'); lf != std::string_view::npos) return lf + 1;
  if (window.size() == max_message_length || ended) return window.size();
  return std::nullopt;
}

std::string printable(std::string_view message) {
  if (message.ends_with('\n')) {
    message.remove_suffix(1);
    if (message.ends_with('\r')) message.remove_suffix(1);
  }
  std::string text;
  text.reserve(message.size());
  for (const char c : message) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte > 0x7e) {
      text += fmt::format("\\x{:02x}", byte);
    } else {
      text += c;
    }
  }
  return text;
}

std::string announcement(std::string_view peer, std::string_view message) {
  return fmt::format("message from {}: {}", peer, printable(message));
}

}  // namespace switchboard::services::ack
