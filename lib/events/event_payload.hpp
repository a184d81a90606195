// Immutable event payloads shared by every subscriber (internal).
//
// A plain rapidjson Document allocates a 64 KiB pool chunk on its first
// allocation, which would make every queued event cost 64 KiB. These helpers
// build the payload in a pool sized for it, and copy every string (rapidjson's
// own copy keeps "const" strings as pointers into the caller's memory, which an
// asynchronous bus must not do).
#pragma once

#include <cstddef>
#include <memory>
#include <string_view>

#include "ordinaut/json.hpp"
#include "ordinaut/result.hpp"

namespace ordinaut::detail {

/// A payload document and the pool it lives in (an inline buffer first, so a
/// small payload needs no allocation of its own). Neither copyable nor movable:
/// embed it, and hand the document out through an aliasing shared_ptr.
class PayloadStorage {
 public:
  /// `chunk`: bytes of each further pool chunk (see copy_size()).
  explicit PayloadStorage(std::size_t chunk);
  PayloadStorage(const PayloadStorage&) = delete;
  PayloadStorage& operator=(const PayloadStorage&) = delete;

  /// Pool bytes a deep copy of `value` takes at most.
  static std::size_t copy_size(const JsonValue& value);
  /// Makes the document a deep copy of `value`, strings included.
  void copy_from(const JsonValue& value);
  /// Parses `text` into the document ("invalid_json" on failure).
  Result<void> parse(std::string_view text);
  /// Empties the document and the pool (keeping the inline buffer), for reuse.
  void reset();
  /// Whether a payload of copy_size() `bytes` fits the inline buffer.
  static constexpr bool fits_inline(std::size_t bytes) { return bytes <= kInlineBytes - 64; }
  /// Whether only the inline buffer is in use (no pool chunk of its own), so
  /// keeping the storage for reuse keeps no further memory.
  bool reusable() const { return pool_.Capacity() <= kInlineBytes; }
  const Json& doc() const { return doc_; }

 private:
  static constexpr std::size_t kInlineBytes = 192;
  alignas(16) char inline_buffer_[kInlineBytes];  // before pool_: the pool uses it
  rapidjson::MemoryPoolAllocator<> pool_;
  Json doc_;
};

/// A deep, self-contained copy of `value`.
std::shared_ptr<const Json> share_payload(const JsonValue& value);

/// Parses `text` into a self-contained payload ("invalid_json" on failure).
Result<std::shared_ptr<const Json>> parse_payload(std::string_view text);

}  // namespace ordinaut::detail
