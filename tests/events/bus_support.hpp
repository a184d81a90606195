// Small helpers shared by the event bus tests.
#pragma once

#include <cstdint>

#include "ordinaut/events.hpp"
#include "ordinaut/json.hpp"

namespace ordinaut_test {

/// {"n": n}, the payload most event tests publish.
inline ordinaut::Json number(std::int64_t n) {
  ordinaut::Json doc = ordinaut::json::object();
  doc.AddMember("n", n, doc.GetAllocator());
  return doc;
}

/// One unsigned figure of EventBus::health().
inline std::uint64_t health_number(const ordinaut::EventBus& bus, const char* key) {
  return bus.health()[key].GetUint64();
}

}  // namespace ordinaut_test
