// Immutable event payloads shared by every subscriber (internal).
//
// A plain rapidjson Document allocates a 64 KiB pool chunk on its first
// allocation, which would make every queued event cost 64 KiB. These helpers
// build the payload in a pool sized for it, and copy every string (rapidjson's
// own copy keeps "const" strings as pointers into the caller's memory, which an
// asynchronous bus must not do).
#pragma once

#include <memory>
#include <string_view>

#include "ordinaut/json.hpp"
#include "ordinaut/result.hpp"

namespace ordinaut::detail {

/// A deep, self-contained copy of `value`.
std::shared_ptr<const Json> share_payload(const JsonValue& value);

/// Parses `text` into a self-contained payload ("invalid_json" on failure).
Result<std::shared_ptr<const Json>> parse_payload(std::string_view text);

}  // namespace ordinaut::detail
