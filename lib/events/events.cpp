// Event values, topic patterns, the capability handles, and shared payloads.
// The in-memory bus is in memory_bus.cpp.
#include "ordinaut/events.hpp"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "events/event_payload.hpp"
#include "core/strings.hpp"

namespace ordinaut {
inline namespace ORDINAUT_ABI_NAMESPACE {

std::string Event::to_json() const {
  return fmt::format(R"({{"id":"{}","topic":"{}","source":"{}","time":"{}","payload":{}}})", json::escape(id),
                     json::escape(topic), json::escape(source), detail::rfc3339(time_ms),
                     payload ? json::dump(*payload) : "null");
}

bool topic_matches(std::string_view pattern, std::string_view topic) noexcept {
  if (pattern == "*") return true;
  if (pattern.size() >= 2 && pattern.ends_with(".*")) {
    std::string_view prefix = pattern.substr(0, pattern.size() - 1);  // keeps the '.'
    return topic.size() > prefix.size() && topic.starts_with(prefix);
  }
  return pattern == topic;
}

namespace {

// The characters a topic may use: A-Z a-z 0-9 _ . : - (a table, not
// std::isalnum, whose answer depends on the C locale the embedder set).
constexpr auto kTopicChars = [] {
  std::array<bool, 256> allowed{};
  for (char c = 'a'; c <= 'z'; ++c) allowed[static_cast<unsigned char>(c)] = true;
  for (char c = 'A'; c <= 'Z'; ++c) allowed[static_cast<unsigned char>(c)] = true;
  for (char c = '0'; c <= '9'; ++c) allowed[static_cast<unsigned char>(c)] = true;
  for (char c : {'_', '.', ':', '-'}) allowed[static_cast<unsigned char>(c)] = true;
  return allowed;
}();

}  // namespace

Result<void> validate_topic(std::string_view topic) {
  if (topic.empty() || topic.size() > 200) {
    return make_error("invalid_topic", fmt::format("topic \"{}\" must have 1 to 200 characters", topic));
  }
  for (char c : topic) {
    if (!kTopicChars[static_cast<unsigned char>(c)]) {
      // One byte of a multi-byte character, or a control character, would be
      // unreadable (and invalid UTF-8) on its own: name its value instead.
      const auto byte = static_cast<unsigned char>(c);
      const std::string found = byte >= 0x20 && byte < 0x7f ? fmt::format("'{}'", c) : fmt::format("byte 0x{:02X}", byte);
      return make_error("invalid_topic",
                        fmt::format("topic \"{}\" may only use A-Z a-z 0-9 _ . : - (found {})", topic, found));
    }
  }
  return {};
}

Result<void> validate_pattern(std::string_view pattern) {
  if (pattern == "*") return {};
  if (pattern.ends_with(".*")) {
    auto prefix = validate_topic(pattern.substr(0, pattern.size() - 2));
    if (!prefix) return make_error("invalid_pattern", fmt::format("pattern \"{}\": {}", pattern, prefix.error().message));
    return {};
  }
  if (auto t = validate_topic(pattern); !t) {
    return make_error("invalid_pattern",
                      fmt::format("pattern \"{}\" must be a topic, \"prefix.*\" or \"*\"", pattern));
  }
  return {};
}

Result<std::vector<std::string>> EventBus::publish_batch(std::string_view source,
                                                         const std::vector<EventDraft>& events) {
  for (const auto& e : events) {
    if (auto v = validate_topic(e.topic); !v) return v.error();
  }
  std::vector<std::string> ids;
  ids.reserve(events.size());
  for (const auto& e : events) {
    auto id = publish(e.topic, source, e.payload);
    if (!id) return id.error();
    ids.push_back(std::move(*id));
  }
  return ids;
}

void Subscription::cancel() {
  if (auto bus = bus_.lock(); bus && id_ != 0) bus->unsubscribe(id_);
  id_ = 0;
}

Result<std::string> EventPublisher::publish(std::string_view topic, const JsonValue& payload) const {
  return bus_->publish(topic, source_, payload);
}

Result<std::vector<std::string>> EventPublisher::publish_batch(const std::vector<EventDraft>& events) const {
  return bus_->publish_batch(source_, events);
}

Result<Subscription> EventSubscriber::subscribe(std::string_view pattern, EventHandler handler,
                                                const SubscribeOptions& options) const {
  auto id = bus_->subscribe(subscriber_, pattern, std::move(handler), options);
  if (!id) return id.error();
  return Subscription(bus_, *id);
}

}  // namespace ORDINAUT_ABI_NAMESPACE

// ---- Shared payloads -----------------------------------------------------------

namespace detail {
namespace {

rapidjson::CrtAllocator& crt_allocator() {
  static rapidjson::CrtAllocator allocator;  // stateless; safe to share
  return allocator;
}

// Upper bound of the pool bytes a copy of `v` takes (rapidjson keeps strings of
// up to 13 bytes inside the value itself).
std::size_t pool_bytes(const JsonValue& v) {
  constexpr std::size_t kAlign = 8;
  auto string_bytes = [](rapidjson::SizeType length) -> std::size_t {
    return length <= 13 ? 0 : (length + 1 + kAlign);
  };
  switch (v.GetType()) {
    case rapidjson::kObjectType: {
      std::size_t n = v.MemberCount() * sizeof(JsonValue::Member) + kAlign;
      for (const auto& m : v.GetObject()) n += string_bytes(m.name.GetStringLength()) + pool_bytes(m.value);
      return n;
    }
    case rapidjson::kArrayType: {
      std::size_t n = v.Size() * sizeof(JsonValue) + kAlign;
      for (const auto& e : v.GetArray()) n += pool_bytes(e);
      return n;
    }
    case rapidjson::kStringType:
      return string_bytes(v.GetStringLength());
    default:
      return 0;
  }
}

// SAX filter that makes the document copy every string and key.
template <typename Handler>
struct CopyStrings {
  Handler& out;
  bool Null() { return out.Null(); }
  bool Bool(bool b) { return out.Bool(b); }
  bool Int(int i) { return out.Int(i); }
  bool Uint(unsigned u) { return out.Uint(u); }
  bool Int64(std::int64_t i) { return out.Int64(i); }
  bool Uint64(std::uint64_t u) { return out.Uint64(u); }
  bool Double(double d) { return out.Double(d); }
  bool RawNumber(const char* s, rapidjson::SizeType n, bool) { return out.RawNumber(s, n, true); }
  bool String(const char* s, rapidjson::SizeType n, bool) { return out.String(s, n, true); }
  bool StartObject() { return out.StartObject(); }
  bool Key(const char* s, rapidjson::SizeType n, bool) { return out.Key(s, n, true); }
  bool EndObject(rapidjson::SizeType n) { return out.EndObject(n); }
  bool StartArray() { return out.StartArray(); }
  bool EndArray(rapidjson::SizeType n) { return out.EndArray(n); }
};

// The stack rapidjson builds a document on: a buffer inside the allocator
// (which lives on the caller's stack for one copy) instead of a malloc and
// free per copy; larger stacks move to the heap. rapidjson's StackAllocator
// concept makes Free static, so each block starts with a header that says
// where it lives.
class ScratchAllocator {
 public:
  static constexpr bool kNeedFree = true;
  void* Malloc(std::size_t size) {
    if (size == 0) return nullptr;
    if (!in_use_ && size <= sizeof buffer_ - kHeader) {
      in_use_ = true;
      return tag(buffer_, kInline);
    }
    void* block = std::malloc(size + kHeader);
    return block == nullptr ? nullptr : tag(block, kHeap);
  }
  void* Realloc(void* old, std::size_t old_size, std::size_t new_size) {
    if (old == nullptr) return Malloc(new_size);  // rapidjson's stack starts this way
    if (!is_inline(old)) {
      void* block = std::realloc(static_cast<char*>(old) - kHeader, new_size + kHeader);
      return block == nullptr ? nullptr : tag(block, kHeap);
    }
    if (new_size <= sizeof buffer_ - kHeader) return old;
    void* grown = Malloc(new_size);  // from the heap: the buffer is in use
    if (grown != nullptr) std::memcpy(grown, old, old_size);
    return grown;
  }
  static void Free(void* p) {
    if (p != nullptr && !is_inline(p)) std::free(static_cast<char*>(p) - kHeader);
  }

 private:
  static constexpr std::size_t kHeader = 16;  // keeps blocks 16-byte aligned
  static constexpr unsigned char kInline = 1, kHeap = 2;
  static void* tag(void* block, unsigned char where) {
    static_cast<unsigned char*>(block)[0] = where;
    return static_cast<char*>(block) + kHeader;
  }
  static bool is_inline(const void* p) { return static_cast<const unsigned char*>(p)[-static_cast<std::ptrdiff_t>(kHeader)] == kInline; }

  alignas(16) char buffer_[4096];
  bool in_use_ = false;
};

using ScratchDocument = rapidjson::GenericDocument<rapidjson::UTF8<>, rapidjson::MemoryPoolAllocator<>, ScratchAllocator>;

struct CopyGenerator {
  const JsonValue& source;
  template <typename Handler>
  bool operator()(Handler& handler) const {
    CopyStrings<Handler> filter{handler};
    return source.Accept(filter);
  }
};

}  // namespace

PayloadStorage::PayloadStorage(std::size_t chunk)
    : pool_(inline_buffer_, sizeof inline_buffer_, std::max<std::size_t>(chunk, 64), &crt_allocator()),
      doc_(&pool_, 256, &crt_allocator()) {}

void PayloadStorage::reset() {
  doc_.SetNull();  // first: nothing may point into the chunks Clear() frees
  pool_.Clear();
}

std::size_t PayloadStorage::copy_size(const JsonValue& value) { return pool_bytes(value); }

void PayloadStorage::copy_from(const JsonValue& value) {
  // Built on a scratch stack, in this storage's pool; then the root moves in.
  ScratchAllocator scratch;
  ScratchDocument builder(&pool_, 1024, &scratch);
  CopyGenerator generator{value};
  builder.Populate(generator);
  static_cast<JsonValue&>(doc_) = std::move(static_cast<JsonValue&>(builder));
}

Result<void> PayloadStorage::parse(std::string_view text) {
  // The one guarded parse (depth, UTF-8, duplicate keys), into this storage's
  // pool: json::parse_into builds in the document's own allocator.
  if (auto parsed = json::parse_into(doc_, text); !parsed) {
    Error e = parsed.error();
    e.message = "payload is not JSON: " + e.message;
    return e;
  }
  return {};
}

std::shared_ptr<const Json> share_payload(const JsonValue& value) {
  auto box = std::make_shared<PayloadStorage>(PayloadStorage::copy_size(value));
  box->copy_from(value);
  return std::shared_ptr<const Json>(box, &box->doc());
}

Result<std::shared_ptr<const Json>> parse_payload(std::string_view text) {
  // Parsed values take at most ~8 pool bytes per input byte (e.g. "[1,1,...]");
  // typical payloads take less, and the pool grows by further chunks if needed.
  auto box = std::make_shared<PayloadStorage>(text.size() * 2);
  if (auto parsed = box->parse(text); !parsed) return parsed.error();
  return std::shared_ptr<const Json>(box, &box->doc());
}

}  // namespace detail

}  // namespace ordinaut
