#include "event_store.hpp"

#include <algorithm>

#include <fmt/format.h>

namespace ordinaut::mcp_http {

std::string sse_event(std::uint64_t id, std::string_view json) {
  std::string out;
  out.reserve(json.size() + 48);
  out += "event: message\nid: ";
  out += std::to_string(id);
  out += "\ndata: ";
  out += json;  // compact JSON: never contains a raw newline
  out += "\n\n";
  return out;
}

std::string sse_priming(std::uint64_t id, std::uint64_t retry_ms) {
  return fmt::format("id: {}\nretry: {}\ndata: \n\n", id, retry_ms);
}

std::uint64_t EventStore::new_stream() {
  std::lock_guard lock(mutex_);
  return next_stream_++;
}

std::uint64_t EventStore::append(std::uint64_t stream, std::string data) {
  std::lock_guard lock(mutex_);
  const std::uint64_t id = next_id_++;
  bytes_ += data.size() + kEventOverhead;
  events_.push_back({id, stream, std::move(data)});
  while (!events_.empty() && (events_.size() > limits_.max_events || bytes_ > limits_.max_bytes)) {
    bytes_ -= events_.front().data.size() + kEventOverhead;
    events_.pop_front();
    ++evicted_;
  }
  return id;
}

EventStore::Replay EventStore::after(std::string_view last_event_id) const {
  Replay replay;
  std::uint64_t id = 0;
  const bool digits = !last_event_id.empty() && last_event_id.size() <= 19 &&
                      std::all_of(last_event_id.begin(), last_event_id.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (!digits) {
    replay.status = Status::malformed;
    return replay;
  }
  for (char c : last_event_id) id = id * 10 + static_cast<std::uint64_t>(c - '0');
  std::lock_guard lock(mutex_);
  if (id == 0 || id >= next_id_) {
    replay.status = Status::unknown;
    return replay;
  }
  auto it = std::lower_bound(events_.begin(), events_.end(), id,
                             [](const StoredEvent& e, std::uint64_t v) { return e.id < v; });
  if (it == events_.end() || it->id != id) {
    replay.status = Status::evicted;  // issued, so stored once: evicted since
    return replay;
  }
  replay.status = Status::ok;
  replay.stream = it->stream;
  for (++it; it != events_.end(); ++it) {
    if (it->stream == replay.stream) replay.events.push_back(*it);
  }
  return replay;
}

std::string EventStore::explain(const Replay& replay, std::string_view last_event_id) const {
  const std::string shown(last_event_id.substr(0, 40));
  switch (replay.status) {
    case Status::ok: return {};
    case Status::malformed:
      return fmt::format("Last-Event-ID \"{}\" is not an event id of this server (ids are decimal numbers)", shown);
    case Status::unknown:
      return fmt::format("Last-Event-ID \"{}\" was never issued in this session", shown);
    case Status::evicted:
      return fmt::format("Last-Event-ID \"{}\" is no longer stored: the session keeps its last {} events and {} "
                         "bytes, and later events pushed it out; the stream cannot be resumed",
                         shown, limits_.max_events, limits_.max_bytes);
  }
  return {};
}

std::size_t EventStore::size() const {
  std::lock_guard lock(mutex_);
  return events_.size();
}

std::size_t EventStore::bytes() const {
  std::lock_guard lock(mutex_);
  return bytes_;
}

std::uint64_t EventStore::last_id() const {
  std::lock_guard lock(mutex_);
  return next_id_ - 1;
}

std::uint64_t EventStore::evicted() const {
  std::lock_guard lock(mutex_);
  return evicted_;
}

}  // namespace ordinaut::mcp_http
