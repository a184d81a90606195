// RateLimiter: token buckets per principal (or client address) and per
// extension, for the Gate. Internal to the host.
//
// Owns: the buckets. Memory is bounded: each of its shards keeps at most
// kMaxBucketsPerShard buckets, dropping full (idle) ones first.
//
// Thread safety: take() may run on any number of threads; each shard has its
// own mutex, so unrelated principals rarely contend.
#pragma once

#include <array>
#include <chrono>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "ordinaut/auth.hpp"

namespace ordinaut::detail {

class RateLimiter {
 public:
  explicit RateLimiter(RateLimitOptions options);

  bool enabled() const { return enabled_; }

  struct Decision {
    bool allowed = true;
    double limit = 0;          // the bucket's size
    double remaining = 0;      // whole requests left now
    double reset_s = 0;        // until the bucket is full again
    double retry_after_s = 0;  // until one request is allowed (when refused)
    std::string_view scope;    // "principal" or "extension"
  };

  // Takes one token for `key` (a principal name or "address:…") and, when
  // `extension_id` has a limit of its own, one from that bucket too.
  Decision take(std::string_view key, std::string_view extension_id);

 private:
  struct Bucket {
    double tokens;
    std::chrono::steady_clock::time_point last;
  };
  struct Shard {
    std::mutex mutex;
    std::unordered_map<std::string, Bucket> buckets;
  };
  static constexpr std::size_t kShards = 16;
  static constexpr std::size_t kMaxBucketsPerShard = 4096;

  Decision take_one(const std::string& key, double rate, double burst, std::chrono::steady_clock::time_point now);

  RateLimitOptions options_;
  bool enabled_ = false;
  std::array<Shard, kShards> shards_;
};

}  // namespace ordinaut::detail
