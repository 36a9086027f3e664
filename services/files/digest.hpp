// SHA-256 of files, through OpenSSL's libcrypto, and the server's cache of
// them: hashing a large file is CPU work on the loop, so it is done once per
// version of a file (its device, inode, size and modification time);
// digest_service.hpp schedules that work.
#pragma once

#include <sys/stat.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>

#include <switchboard/result.hpp>
#include <switchboard/task.hpp>

#include "protocol.hpp"

struct evp_md_ctx_st;  // OpenSSL's EVP_MD_CTX

namespace switchboard::services::files {

using protocol::digest;

// An incremental SHA-256.
class sha256 {
 public:
  sha256();
  ~sha256();
  sha256(const sha256&) = delete;
  sha256& operator=(const sha256&) = delete;

  void update(std::span<const std::byte> bytes);
  // The digest of everything updated so far; the object is spent afterwards.
  digest finish();

 private:
  ::evp_md_ctx_st* context_;
};

// Lower-case hexadecimal.
std::string to_hex(const digest& d);

// The SHA-256 of the first `size` bytes of the regular file `fd`, read with
// pread and yielding to the loop after every MiB so that other clients go on
// meanwhile; an error when the file is shorter or cannot be read.
task<result<digest>> hash_file(int fd, std::uint64_t size);

// One version of a file: a changed file gets a new identity.
struct file_identity {
  dev_t device = 0;
  ino_t inode = 0;
  std::uint64_t size = 0;
  std::int64_t modified_ns = 0;

  static file_identity of(const struct stat& info);
  // The identity of what `fd` is now; nullopt when fstat fails.
  static std::optional<file_identity> now(int fd);
  friend bool operator==(const file_identity&, const file_identity&) = default;
};

struct file_identity_hash {
  std::size_t operator()(const file_identity& id) const noexcept;
};

// The digests of the file versions served most recently: a lookup counts as
// a use, and the entry unused for longest is forgotten first, so that a
// file asked for again and again stays while a crawl through many others
// passes by.
class digest_cache {
 public:
  explicit digest_cache(std::size_t capacity) : capacity_(capacity) {}

  std::optional<digest> find(const file_identity& id);
  // Remembers `d`, forgetting the least recently used entry when full.
  void store(const file_identity& id, const digest& d);
  std::size_t size() const noexcept { return entries_.size(); }

 private:
  struct entry {
    digest value;
    std::uint64_t used;  // the use counter when last found or stored
  };
  std::size_t capacity_;
  std::uint64_t uses_ = 0;
  std::unordered_map<file_identity, entry, file_identity_hash> entries_;
};

}  // namespace switchboard::services::files
