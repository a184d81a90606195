// The worker loop of a Redis bus subscription (see redis_subscription.hpp).
//
// hiredis: a redisContext is used by one thread at a time; the only
// cross-thread act is shutdown(2) on the socket of a subscription blocked in
// XREADGROUP, done under its conn_mutex (request_stop).
#include "events/redis_subscription.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <charconv>
#include <set>

#include <fmt/format.h>

#include "core/strings.hpp"

#include "events/event_payload.hpp"
#include "events/sigpipe.hpp"

namespace ordinaut::detail::redis {

SubscriptionRunner::SubscriptionRunner(const RedisBusOptions& options, Link& link, Pool& pool, Totals& totals)
    : options_(options),
      link_(link),
      pool_(pool),
      totals_(totals),
      streams_prefix_(options.key_prefix + "events:"),
      registry_key_(options.key_prefix + "topics"),
      log_(options.log ? options.log : stderr_log_sink()) {}

void SubscriptionRunner::log(LogLevel level, std::string_view event, const std::string& message) const {
  LogRecord record;
  record.time_ms = detail::now_ms();
  record.level = level;
  record.event = event;
  record.message = message;
  try {
    log_(record);
  } catch (...) {  // a failing sink must not stop delivery
  }
}

namespace {

// Orders stream entry ids ("<ms>-<seq>") numerically.
bool id_less(std::string_view a, std::string_view b) {
  auto split = [](std::string_view id) {
    std::uint64_t ms = 0, seq = 0;
    const auto dash = id.find('-');
    std::from_chars(id.data(), id.data() + std::min(dash, id.size()), ms);
    if (dash != std::string_view::npos) std::from_chars(id.data() + dash + 1, id.data() + id.size(), seq);
    return std::pair{ms, seq};
  };
  return split(a) < split(b);
}

}  // namespace

void SubscriptionRunner::request_stop(RedisSubscription& s) {
  {
    std::lock_guard lock(s.conn_mutex);
    s.stop.store(true);
    // Unblock XREADGROUP BLOCK at once instead of waiting out its timeout.
    if (s.blocked && s.active != nullptr) ::shutdown(s.active->fd, SHUT_RDWR);
  }
  s.wake.notify_all();
}

std::optional<Error> SubscriptionRunner::discover(RedisSubscription& s, redisContext* c, Discovery mode) {
  const bool rebuild = mode == Discovery::rebuild;
  std::vector<std::string> topics;
  if (s.exact()) {
    topics.push_back(s.pattern);
  } else {
    auto r = run(c, Command{"SMEMBERS", registry_key_});
    if (auto* io = std::get_if<IoError>(&r)) return make_error("bus_unavailable", "SMEMBERS: " + io->message);
    const redisReply* members = std::get<0>(r).get();
    std::set<std::string_view> registered;
    if (is_array(members)) {
      for (std::size_t i = 0; i < members->elements; ++i) {
        std::string_view t = text(members->element[i]);
        registered.insert(t);
        if (topic_matches(s.pattern, t)) topics.emplace_back(t);
      }
    }
    // The topic set lost topics this subscription reads (Redis flushed or
    // restarted empty): put them back, so that other processes find them.
    Command announce{"SADD", registry_key_};
    bool missing = false;
    for (const auto& [key, topic] : s.streams) {
      if (registered.count(topic)) continue;
      announce.add(topic);
      missing = true;
      if (rebuild) topics.push_back(topic);
    }
    if (missing) {
      auto added = run(c, announce);
      if (auto* io = std::get_if<IoError>(&added)) return make_error("bus_unavailable", "SADD: " + io->message);
    }
  }
  std::vector<std::string> keys;
  keys.reserve(topics.size());
  for (const auto& t : topics) {
    std::string key = streams_prefix_ + t;
    if (!rebuild && s.streams.count(key)) continue;
    if (std::find(keys.begin(), keys.end(), key) == keys.end()) keys.push_back(std::move(key));
  }
  if (keys.empty()) return std::nullopt;
  // Where each group starts: at the end of a stream that exists when
  // subscribe() runs; at the subscription's start on a stream found later;
  // after the last entry handled on a joined stream whose group was lost.
  std::vector<std::string> starts;
  std::vector<Command> creates;
  for (const auto& key : keys) {
    auto handled = s.last_handled.find(key);
    starts.push_back(mode == Discovery::initial        ? std::string("$")
                     : handled != s.last_handled.end() ? handled->second
                                                       : s.start_id);
  }
  for (std::size_t i = 0; i < keys.size(); ++i) {
    creates.push_back(Command{"XGROUP", "CREATE", keys[i], s.group, starts[i], "MKSTREAM"});
  }
  auto r = pipeline(c, creates);
  if (auto* io = std::get_if<IoError>(&r)) return make_error("bus_unavailable", "XGROUP CREATE: " + io->message);
  auto& replies = std::get<0>(r);
  for (std::size_t i = 0; i < keys.size(); ++i) {
    const redisReply* reply = replies[i].get();
    const bool joined = s.streams.count(keys[i]) != 0;
    if (is_error(reply) && !text(reply).starts_with("BUSYGROUP")) {
      // E.g. WRONGTYPE: the key is not a stream. Recorded; retried at the next
      // discovery. A joined stream is left, or every read would fail.
      set_error(s, fmt::format("XGROUP CREATE {} {}: {}", keys[i], s.group, text(reply)));
      if (joined) s.streams.erase(keys[i]);
      continue;
    }
    if (joined && !is_error(reply)) {  // the group was gone, and is back: once per loss
      s.totals.group_recreated.fetch_add(1);
      totals_.group_recreated.fetch_add(1);
      log(LogLevel::warn, "event_group_recreated",
          fmt::format("event bus: consumer group {} of {} was missing on {} (Redis flushed or restarted empty); "
                      "recreated after entry {}",
                      s.group, s.subscriber, keys[i], starts[i]));
    }
    s.streams[keys[i]] = keys[i].substr(streams_prefix_.size());
  }
  {
    std::lock_guard lock(s.stats_mutex);
    for (const auto& [key, topic] : s.streams) {
      if (std::none_of(s.stats.begin(), s.stats.end(), [&](const StreamStats& st) { return st.stream == key; })) {
        s.stats.push_back(StreamStats{key, topic, 0, -1, ""});
      }
    }
  }
  return std::nullopt;
}

void SubscriptionRunner::set_error(RedisSubscription& s, std::string message) {
  std::lock_guard lock(s.stats_mutex);
  s.last_error = std::move(message);
}

void SubscriptionRunner::read_outcome(RedisSubscription& s, bool ok) {
  std::lock_guard lock(s.stats_mutex);
  s.read_started = Clock::time_point{};
  if (ok) {
    s.last_read_ms = detail::now_ms();
    s.unreadable_since_ms = 0;
  } else if (s.unreadable_since_ms == 0) {
    s.unreadable_since_ms = detail::now_ms();
  }
}

void SubscriptionRunner::reject(RedisSubscription& s, const std::string& key, std::string_view id,
                                std::string_view reason, const std::string& detail) {
  (reason == "no_payload" ? s.totals.rejected_no_payload : s.totals.rejected_invalid_json).fetch_add(1);
  (reason == "no_payload" ? totals_.rejected_no_payload : totals_.rejected_invalid_json).fetch_add(1);
  std::string message = fmt::format("entry {} of {} is not an Ordinaut event ({}): {}", id, key, reason, detail);
  set_error(s, message);
  // At most one line a minute per stream: a flood of bad entries must not flood the log.
  auto& [last, unlogged] = s.rejection_log[key];
  const auto now = Clock::now();
  if (last != Clock::time_point{} && now - last < std::chrono::minutes(1)) {
    ++unlogged;
    return;
  }
  if (unlogged > 0) message += fmt::format(" ({} more rejected since the last report)", unlogged);
  last = now;
  unlogged = 0;
  log(LogLevel::warn, "event_rejected", "event bus: " + message + "; acknowledged, not delivered");
}

// Sleeps up to `d`, or until the subscription is stopped.
void SubscriptionRunner::pause(RedisSubscription& s, milliseconds d) {
  std::unique_lock lock(s.conn_mutex);
  s.wake.wait_for(lock, d, [&] { return s.stop.load(); });
}

// Delivers one entry (fields: the entry's field array, or nil when the entry
// was trimmed). Returns true when it may be acknowledged.
bool SubscriptionRunner::deliver(RedisSubscription& s, const std::string& key, std::string_view id,
                                 const redisReply* fields, long long earlier_deliveries) {
  if (!is_array(fields)) {
    s.totals.dropped.fetch_add(1);
    totals_.dropped.fetch_add(1);
    set_error(s, fmt::format("entry {} of {} was trimmed before it was handled", id, key));
    return true;
  }
  Event event;
  event.id = id;
  std::string_view payload_text;
  bool has_payload = false;
  for (std::size_t i = 0; i + 1 < fields->elements; i += 2) {
    std::string_view name = text(fields->element[i]), value = text(fields->element[i + 1]);
    if (name == "topic") {
      event.topic = value;
    } else if (name == "source") {
      event.source = value;
    } else if (name == "time") {
      std::from_chars(value.data(), value.data() + value.size(), event.time_ms);
    } else if (name == "payload") {
      payload_text = value;
      has_payload = true;
    }
  }
  if (event.topic.empty()) event.topic = key.substr(streams_prefix_.size());
  if (!has_payload) {
    reject(s, key, id, "no_payload", "no payload field");
    return true;
  }
  // Anything may write into Redis: json::parse refuses nesting that would
  // exhaust the stack, before the payload is copied into its own storage.
  auto parsed = json::parse(payload_text);
  if (!parsed) {
    reject(s, key, id, "invalid_json", parsed.error().message);
    return true;
  }
  event.payload = detail::share_payload(*parsed);
  if (earlier_deliveries >= options_.max_attempts) {
    s.totals.failed.fetch_add(1);
    totals_.failed.fetch_add(1);
    set_error(s, fmt::format("event {} on {} given up after {} deliveries", id, event.topic, earlier_deliveries));
    return true;
  }
  auto delay = options_.retry_delay;
  for (long long attempt = earlier_deliveries + 1;; ++attempt) {
    std::string error;
    try {
      s.handler(event);
      s.totals.delivered.fetch_add(1, std::memory_order_relaxed);
      totals_.delivered.fetch_add(1, std::memory_order_relaxed);
      return true;
    } catch (const std::exception& e) {
      error = e.what();
    } catch (...) {
      error = "handler threw a non-standard exception";
    }
    set_error(s, fmt::format("event {} on {}: {}", id, event.topic, error));
    if (s.stop.load()) return false;  // stays pending: redelivered to the group later
    if (attempt >= options_.max_attempts) {
      s.totals.failed.fetch_add(1);
      totals_.failed.fetch_add(1);
      return true;
    }
    s.totals.retried.fetch_add(1);
    totals_.retried.fetch_add(1);
    pause(s, delay);
    if (s.stop.load()) return false;
    delay *= 2;
  }
}

// Handles an XREADGROUP/XCLAIM reply of entries for `key`; acknowledges what
// was handled. Returns false on I/O failure.
bool SubscriptionRunner::handle_entries(RedisSubscription& s, redisContext* c, const std::string& key,
                                        const redisReply* entries, const std::map<std::string, long long>* deliveries) {
  if (!is_array(entries) || entries->elements == 0) return true;
  Command ack{"XACK", key, s.group};
  std::vector<std::string> ids;
  ids.reserve(entries->elements);
  for (std::size_t i = 0; i < entries->elements; ++i) {
    const redisReply* entry = entries->element[i];
    if (!is_array(entry) || entry->elements < 2) continue;  // nil: deleted entry (older XCLAIM)
    std::string id(text(entry->element[0]));
    long long earlier = 0;
    if (deliveries != nullptr) {
      if (auto it = deliveries->find(id); it != deliveries->end()) earlier = it->second;
    }
    if (s.stop.load()) break;
    if (deliver(s, key, id, entry->element[1], earlier)) {
      auto& handled = s.last_handled[key];
      if (handled.empty() || id_less(handled, id)) handled = id;
      ids.push_back(std::move(id));
    }
  }
  if (ids.empty()) return true;
  for (const auto& id : ids) ack.add(id);
  auto r = run(c, std::move(ack));
  if (auto* io = std::get_if<IoError>(&r)) {
    set_error(s, "XACK: " + io->message);
    return false;
  }
  return true;
}

// Runs XREADGROUP over the subscription's streams. `pending` re-reads this
// consumer's own unacknowledged entries (id 0) instead of new ones (">").
// Returns: nullopt on I/O failure, else whether any entry came back.
std::optional<bool> SubscriptionRunner::read(RedisSubscription& s, redisContext* c, bool pending, bool& need_setup) {
  std::string count = std::to_string(options_.read_count);
  std::string block = std::to_string(options_.block_timeout.count());
  Command cmd{"XREADGROUP", "GROUP", s.group, s.consumer, "COUNT", count};
  if (!pending) cmd.add("BLOCK").add(block);
  cmd.add("STREAMS");
  for (const auto& [key, topic] : s.streams) cmd.add(key);
  for (std::size_t i = 0; i < s.streams.size(); ++i) cmd.add(pending ? "0" : ">");
  {
    std::lock_guard lock(s.conn_mutex);
    if (s.stop.load()) return false;
    s.blocked = !pending;
  }
  {
    std::lock_guard lock(s.stats_mutex);
    s.read_started = Clock::now();
    s.read_started_ms = detail::now_ms();
  }
  auto r = run(c, std::move(cmd));
  {
    std::lock_guard lock(s.conn_mutex);
    s.blocked = false;
  }
  if (auto* io = std::get_if<IoError>(&r)) {
    if (!s.stop.load()) set_error(s, "XREADGROUP: " + io->message);
    read_outcome(s, false);
    return std::nullopt;
  }
  const redisReply* reply = std::get<0>(r).get();
  read_outcome(s, !is_error(reply));
  if (is_error(reply)) {
    set_error(s, fmt::format("XREADGROUP: {}", text(reply)));
    if (text(reply).starts_with("NOGROUP")) need_setup = true;  // stream or group lost: make them again
    pause(s, options_.backoff_initial);                         // e.g. LOADING after a restart: do not spin
    return false;
  }
  bool any = false;
  if (!is_array(reply)) return false;  // nil: BLOCK timed out
  for (std::size_t i = 0; i < reply->elements; ++i) {
    const redisReply* stream = reply->element[i];
    if (!is_array(stream) || stream->elements < 2) continue;
    std::string key(text(stream->element[0]));
    any = any || (is_array(stream->element[1]) && stream->element[1]->elements > 0);
    if (!handle_entries(s, c, key, stream->element[1])) return std::nullopt;
  }
  return any;
}

// Claims entries that other consumers of the group left pending for longer
// than claim_min_idle (they died), and handles them.
bool SubscriptionRunner::reclaim(RedisSubscription& s, redisContext* c) {
  const std::string min_idle = std::to_string(options_.claim_min_idle.count());
  std::set<std::string> quiet;  // streams whose group has nothing pending (as of the last stats)
  {
    std::lock_guard lock(s.stats_mutex);
    for (const auto& st : s.stats) {
      if (st.pending == 0 && !st.last_delivered_id.empty()) quiet.insert(st.stream);
    }
  }
  for (const auto& [key, topic] : s.streams) {
    if (quiet.count(key)) continue;
    auto r = run(c, Command{"XPENDING", key, s.group, "-", "+", "100"});
    if (std::holds_alternative<IoError>(r)) return false;
    const redisReply* list = std::get<0>(r).get();
    if (!is_array(list)) continue;
    std::map<std::string, long long> deliveries;
    Command claim{"XCLAIM", key, s.group, s.consumer, min_idle};
    std::vector<std::string> ids;
    for (std::size_t i = 0; i < list->elements; ++i) {
      const redisReply* p = list->element[i];
      if (!is_array(p) || p->elements < 4) continue;
      if (text(p->element[1]) == s.consumer || p->element[2]->integer < options_.claim_min_idle.count()) continue;
      ids.emplace_back(text(p->element[0]));
      deliveries[ids.back()] = p->element[3]->integer;
    }
    if (ids.empty()) continue;
    for (const auto& id : ids) claim.add(id);
    auto claimed = run(c, std::move(claim));
    if (std::holds_alternative<IoError>(claimed)) return false;
    const redisReply* entries = std::get<0>(claimed).get();
    if (is_array(entries)) {
      s.totals.reclaimed.fetch_add(entries->elements);
      totals_.reclaimed.fetch_add(entries->elements);
    }
    if (!handle_entries(s, c, key, entries, &deliveries)) return false;
  }
  return true;
}

// Refreshes pending counts and lag from XINFO GROUPS.
bool SubscriptionRunner::refresh_stats(RedisSubscription& s, redisContext* c) {
  std::vector<Command> commands;
  std::vector<std::string> keys;
  for (const auto& [key, topic] : s.streams) {
    commands.push_back(Command{"XINFO", "GROUPS", key});
    keys.push_back(key);
  }
  if (commands.empty()) return true;
  auto r = pipeline(c, commands);
  if (std::holds_alternative<IoError>(r)) return false;
  auto& replies = std::get<0>(r);
  std::lock_guard lock(s.stats_mutex);
  for (std::size_t i = 0; i < keys.size(); ++i) {
    auto st = std::find_if(s.stats.begin(), s.stats.end(), [&](const StreamStats& x) { return x.stream == keys[i]; });
    if (st == s.stats.end() || !is_array(replies[i].get())) continue;
    for (std::size_t g = 0; g < replies[i]->elements; ++g) {
      const redisReply* info = replies[i]->element[g];
      if (!is_array(info)) continue;
      std::map<std::string_view, const redisReply*> fields;
      for (std::size_t f = 0; f + 1 < info->elements; f += 2) fields[text(info->element[f])] = info->element[f + 1];
      if (!fields.count("name") || text(fields["name"]) != s.group) continue;
      if (fields.count("pending")) st->pending = fields["pending"]->integer;
      if (fields.count("last-delivered-id")) st->last_delivered_id = std::string(text(fields["last-delivered-id"]));
      auto lag = fields.find("lag");
      st->lag = lag != fields.end() && lag->second->type == REDIS_REPLY_INTEGER ? lag->second->integer : -1;
    }
  }
  return true;
}

void SubscriptionRunner::set_connected(RedisSubscription& s, bool connected) {
  std::lock_guard lock(s.stats_mutex);
  if (connected && !s.connected && s.last_connect_failed) ++s.reconnects;
  s.connected = connected;
  s.last_connect_failed = !connected;
}

void SubscriptionRunner::work(RedisSubscription& s) {
  // Not blocked for good here: this thread runs handlers, and threads or
  // processes they start would inherit the mask. pipeline() guards its I/O.
  Context c;
  int failures = 0;
  bool need_setup = false, read_pending = true;
  Clock::time_point next_discovery{}, next_claim = Clock::now(), next_stats{};
  const bool exact = s.exact();
  auto drop_connection = [&](const std::string& why) {
    {
      std::lock_guard lock(s.conn_mutex);
      s.active = nullptr;
    }
    c.reset();
    set_connected(s, false);
    read_outcome(s, false);
    if (!s.stop.load()) link_.failure(why);
  };
  while (!s.stop.load()) {
    if (!c) {
      auto fresh = link_.connect(options_.command_timeout + options_.block_timeout);
      if (!fresh) {
        set_error(s, fresh.error().message);
        set_connected(s, false);
        read_outcome(s, false);
        link_.failure(fresh.error().message);
        pause(s, backoff_delay(options_, ++failures));
        continue;
      }
      failures = 0;
      c = std::move(*fresh);
      {
        std::lock_guard lock(s.conn_mutex);
        s.active = c.get();
      }
      link_.success();
      set_connected(s, true);
      need_setup = true;  // Redis may have restarted without our groups
      read_pending = true;
    }
    const auto now = Clock::now();
    if (need_setup || (!exact && now >= next_discovery)) {
      if (auto err = discover(s, c.get(), need_setup ? Discovery::rebuild : Discovery::later)) {
        drop_connection(err->message);
        continue;
      }
      need_setup = false;
      next_discovery = now + options_.discovery_interval;
    }
    if (now >= next_stats) {
      if (!refresh_stats(s, c.get())) {
        drop_connection("XINFO GROUPS failed");
        continue;
      }
      next_stats = now + options_.stats_interval;
    }
    if (now >= next_claim) {
      if (!reclaim(s, c.get())) {
        drop_connection("XPENDING/XCLAIM failed");
        continue;
      }
      next_claim = now + options_.claim_interval;
    }
    if (s.streams.empty()) {  // a pattern with no matching topic yet
      read_outcome(s, true);  // nothing to read, and Redis answered discovery
      pause(s, options_.discovery_interval);
      continue;
    }
    auto got = read(s, c.get(), read_pending, need_setup);
    if (!got) {
      drop_connection("XREADGROUP failed");
      continue;
    }
    if (read_pending && !*got) read_pending = false;  // own backlog done: read new entries
  }
  {
    std::lock_guard lock(s.conn_mutex);
    s.active = nullptr;
  }
  c.reset();
  cleanup(s);
}

// A private group goes with its subscription; a member of a named group
// leaves it when it holds no pending entries (else others reclaim them).
void SubscriptionRunner::cleanup(RedisSubscription& s) {
  if (s.streams.empty() || !link_.connected()) return;  // down: do not make shutdown wait for it
  auto lease = pool_.acquire();
  if (!lease) return;
  std::vector<Command> commands;
  for (const auto& [key, topic] : s.streams) {
    if (s.group_label.empty()) {
      commands.push_back(Command{"XGROUP", "DESTROY", key, s.group});
    } else {
      commands.push_back(Command{"XPENDING", key, s.group, "-", "+", "1", s.consumer});
    }
  }
  auto r = pipeline(lease->context.get(), commands);
  if (std::holds_alternative<IoError>(r)) return;
  if (!s.group_label.empty()) {
    std::vector<Command> leave;
    std::size_t i = 0;
    for (const auto& [key, topic] : s.streams) {
      const redisReply* p = std::get<0>(r)[i++].get();
      if (is_array(p) && p->elements == 0) leave.push_back(Command{"XGROUP", "DELCONSUMER", key, s.group, s.consumer});
    }
    if (!leave.empty() && std::holds_alternative<IoError>(pipeline(lease->context.get(), leave))) return;
  }
  pool_.release(std::move(*lease));
}

}  // namespace ordinaut::detail::redis
