// result<T>: a value or a std::error_code, the return type of every I/O call.
//
// I/O failures that a service handles inline (EOF aside: that is a read of 0
// bytes) come back as values, not exceptions; g++ 12 in C++20 mode has no
// std::expected, so this is the project's small stand-in.
#pragma once

#include <cerrno>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>

namespace switchboard {

template <class T>
class [[nodiscard]] result {
 public:
  result(T value) : state_(std::in_place_index<0>, std::move(value)) {}
  result(std::error_code error) : state_(std::in_place_index<1>, error) {}

  // True when a value is present.
  explicit operator bool() const noexcept { return state_.index() == 0; }
  bool has_value() const noexcept { return state_.index() == 0; }

  // The value; throws std::system_error when this holds an error.
  T& value() & { check(); return std::get<0>(state_); }
  const T& value() const& { check(); return std::get<0>(state_); }
  T&& value() && { check(); return std::get<0>(std::move(state_)); }

  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  // The error; an empty error_code when this holds a value.
  std::error_code error() const noexcept {
    return state_.index() == 1 ? std::get<1>(state_) : std::error_code{};
  }

 private:
  void check() const {
    if (state_.index() == 1) throw std::system_error(std::get<1>(state_));
  }
  std::variant<T, std::error_code> state_;
};

template <>
class [[nodiscard]] result<void> {
 public:
  result() = default;
  result(std::error_code error) : error_(error) {}

  explicit operator bool() const noexcept { return !error_; }
  bool has_value() const noexcept { return !error_; }
  void value() const {
    if (error_) throw std::system_error(error_);
  }
  std::error_code error() const noexcept { return error_; }

 private:
  std::error_code error_;
};

// The error_code for a positive errno value.
inline std::error_code errno_code(int err) noexcept {
  return {err, std::generic_category()};
}

// Converts the kernel convention (>= 0, or -errno) into a result.
template <class T = std::size_t>
result<T> from_syscall(long res) {
  if (res < 0) return errno_code(static_cast<int>(-res));
  return static_cast<T>(res);
}

}  // namespace switchboard
