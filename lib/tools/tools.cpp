#include "ordinaut/tools.hpp"

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <shared_mutex>

#include <fmt/format.h>

#include "ordinaut/capability.hpp"

#include "tools/registry_support.hpp"

namespace ordinaut {
inline namespace ORDINAUT_ABI_NAMESPACE {

namespace {

struct Entry {
  ToolInfo info;
  std::unique_ptr<JsonSchema> input;
  std::unique_ptr<JsonSchema> output;
  ToolFunction function;
  std::shared_ptr<const void> lease;  // keeps the owner's code alive (hold_for_owner)
  mutable std::atomic<std::uint64_t> calls{0};
  mutable std::atomic<std::uint64_t> errors{0};
  mutable std::atomic<std::uint64_t> nanos{0};
};


Result<std::unique_ptr<JsonSchema>> compile_tool_schema(std::string_view tool, std::string_view which,
                                                        std::string_view text) {
  auto schema = JsonSchema::compile(text);
  if (!schema) {
    return make_error("invalid_tool", fmt::format("tool {}: {} schema: {}", tool, which, schema.error().message));
  }
  const JsonValue& doc = schema->document();
  auto type = json::get_string(doc, "type");
  if (!type || *type != "object") {
    return make_error("invalid_tool", fmt::format("tool {}: {} schema must have \"type\": \"object\"", tool, which));
  }
  return std::make_unique<JsonSchema>(std::move(schema).value());
}

ToolContext& null_context() {
  static ToolContext context;
  return context;
}

}  // namespace

struct ToolRegistry::Impl : detail::ListenerSet {
  mutable std::shared_mutex mutex;
  std::map<std::string, std::shared_ptr<const Entry>, std::less<>> tools;
  std::function<void(std::string_view)> resolver;
  std::map<std::string, std::shared_ptr<const void>, std::less<>> leases;  // by owner; under mutex
  std::atomic<bool> frozen{false};

  std::shared_ptr<const Entry> find(std::string_view name) const {
    std::shared_lock lock(mutex);
    auto it = tools.find(name);
    return it == tools.end() ? nullptr : it->second;
  }

  // A missing or declared-only tool asks the resolver to load its owner.
  std::shared_ptr<const Entry> find_or_resolve(std::string_view name) const {
    auto entry = find(name);
    if (entry && !entry->info.declared) return entry;
    std::function<void(std::string_view)> r;
    {
      std::shared_lock lock(mutex);
      r = resolver;
    }
    if (!r) return entry;
    r(name);
    return find(name);
  }

  // Adds `entry`; it may replace its owner's own declaration of the name.
  Result<void> insert(std::shared_ptr<Entry> entry) {
    {
      std::unique_lock lock(mutex);
      if (!entry->info.declared) {
        if (auto lease = leases.find(entry->info.owner); lease != leases.end()) entry->lease = lease->second;
      }
      auto it = tools.find(entry->info.name);
      if (it != tools.end()) {
        const Entry& old = *it->second;
        if (!(old.info.declared && !entry->info.declared && old.info.owner == entry->info.owner)) {
          return make_error("duplicate_tool", fmt::format("tool {} is already {} by '{}'", entry->info.name,
                                                          old.info.declared ? "declared" : "registered",
                                                          old.info.owner));
        }
        it->second = std::move(entry);
      } else {
        const std::string name = entry->info.name;
        tools.emplace(name, std::move(entry));
      }
    }
    changed();
    return {};
  }

  std::size_t remove_if(const std::function<bool(const Entry&)>& pred) {
    const std::size_t removed = detail::erase_entries(mutex, tools, pred);
    if (removed > 0) changed();
    return removed;
  }
};

ToolRegistry::ToolRegistry() : impl_(std::make_unique<Impl>()) {}
ToolRegistry::~ToolRegistry() = default;

namespace {

Result<std::shared_ptr<Entry>> make_entry(ToolSpec& spec, std::string_view owner, bool declared) {
  if (!detail::valid_registry_name(spec.name)) {
    return make_error("invalid_tool",
                      fmt::format("tool name \"{}\" is invalid: use 1-128 characters of A-Z a-z 0-9 _ . -", spec.name));
  }
  if (owner == "core") {
    if (spec.name.starts_with("ext.")) {
      return make_error("tool_namespace", fmt::format("tool {}: names starting with \"ext.\" belong to extensions",
                                                      spec.name));
    }
  } else {
    const std::string prefix = fmt::format("ext.{}.", owner);
    if (!spec.name.starts_with(prefix) || spec.name.size() == prefix.size()) {
      return make_error("tool_namespace",
                        fmt::format("tool {} is outside the namespace of extension '{}': its tools must be named "
                                    "{}<name>",
                                    spec.name, owner, prefix));
    }
  }
  if (spec.description.empty()) {
    return make_error("invalid_tool", fmt::format("tool {}: a description is required", spec.name));
  }
  if (!declared && !spec.function) {
    return make_error("invalid_tool", fmt::format("tool {}: function is empty", spec.name));
  }

  auto entry = std::make_shared<Entry>();
  auto input = compile_tool_schema(spec.name, "input", spec.input_schema);
  if (!input) return input.error();
  entry->input = std::move(input).value();
  if (!spec.output_schema.empty()) {
    auto output = compile_tool_schema(spec.name, "output", spec.output_schema);
    if (!output) return output.error();
    entry->output = std::move(output).value();
  }
  if (!spec.annotations.empty()) {
    auto annotations = json::parse(spec.annotations);
    if (!annotations || !annotations->IsObject()) {
      return make_error("invalid_tool", fmt::format("tool {}: annotations must be a JSON object{}", spec.name,
                                                    annotations ? "" : ": " + annotations.error().message));
    }
    entry->info.annotations = std::make_shared<const Json>(std::move(annotations).value());
  }
  entry->info.name = spec.name;
  entry->info.title = std::move(spec.title);
  entry->info.description = std::move(spec.description);
  entry->info.owner = std::string(owner);
  entry->info.declared = declared;
  entry->info.input_schema = std::make_shared<const Json>(json::copy(entry->input->document()));
  if (entry->output) entry->info.output_schema = std::make_shared<const Json>(json::copy(entry->output->document()));
  if (declared) {
    // Compiled only to check them: a declaration is listed, never called, so
    // it keeps the documents (above) and not the validators, which cost
    // about 20 KiB per tool (tests/bench/mcp/tools_list.py).
    entry->input.reset();
    entry->output.reset();
  } else {
    entry->function = std::move(spec.function);
  }
  return entry;
}

}  // namespace

Result<void> ToolRegistry::add(ToolSpec spec, std::string_view owner) {
  if (impl_->frozen.load()) {
    return make_error("registry_frozen", fmt::format("tool {}: the tool registry is frozen", spec.name));
  }
  auto entry = make_entry(spec, owner, false);
  if (!entry) return entry.error();
  return impl_->insert(std::move(entry).value());
}

Result<void> ToolRegistry::declare(ToolSpec spec, std::string_view owner) {
  auto entry = make_entry(spec, owner, true);
  if (!entry) return entry.error();
  return impl_->insert(std::move(entry).value());
}

std::size_t ToolRegistry::remove_registered(std::string_view owner) {
  return impl_->remove_if([&](const Entry& e) { return e.info.owner == owner && !e.info.declared; });
}

bool ToolRegistry::remove(std::string_view name) {
  if (impl_->frozen.load()) return false;
  std::shared_ptr<const Entry> gone;  // freed after the lock (see remove_owner)
  {
    std::unique_lock lock(impl_->mutex);
    auto it = impl_->tools.find(name);
    if (it == impl_->tools.end()) return false;
    gone = std::move(it->second);
    impl_->tools.erase(it);
  }
  impl_->changed();
  return true;
}

std::size_t ToolRegistry::remove_owner(std::string_view owner) {
  return impl_->remove_if([&](const Entry& e) { return e.info.owner == owner; });
}

void ToolRegistry::hold_for_owner(std::string_view owner, std::shared_ptr<const void> lease) {
  detail::set_lease(impl_->mutex, impl_->leases, owner, std::move(lease));
}

std::vector<ToolInfo> ToolRegistry::list() const {
  std::shared_lock lock(impl_->mutex);
  std::vector<ToolInfo> out;
  out.reserve(impl_->tools.size());
  for (const auto& [name, entry] : impl_->tools) out.push_back(entry->info);
  return out;
}

std::optional<ToolInfo> ToolRegistry::get(std::string_view name) const {
  auto entry = impl_->find_or_resolve(name);
  if (!entry) return std::nullopt;
  return entry->info;
}

Result<Json> ToolRegistry::call(std::string_view name, const JsonValue& input, ToolContext* context) const {
  auto entry = impl_->find_or_resolve(name);
  if (!entry) return make_error("tool_not_found", fmt::format("no tool named {}", name));
  if (entry->info.declared) {
    return make_error("extension_unavailable",
                      fmt::format("tool {} is declared by extension '{}', which did not load or did not register it "
                                  "(see /ext/status)",
                                  name, entry->info.owner));
  }
  auto started = std::chrono::steady_clock::now();
  entry->calls.fetch_add(1, std::memory_order_relaxed);
  auto finish = [&](Result<Json> result) -> Result<Json> {
    auto elapsed = std::chrono::steady_clock::now() - started;
    entry->nanos.fetch_add(static_cast<std::uint64_t>(std::chrono::nanoseconds(elapsed).count()),
                           std::memory_order_relaxed);
    if (!result) entry->errors.fetch_add(1, std::memory_order_relaxed);
    return result;
  };
  if (auto valid = entry->input->validate(input); !valid) {
    Error e = valid.error();
    e.code = "invalid_input";
    e.message = fmt::format("tool {}: invalid input at {}", name, e.message);
    return finish(std::move(e));
  }
  Json output;
  try {
    output = entry->function(input, context != nullptr ? *context : null_context());
  } catch (const ToolError& e) {
    Error error = make_error(e.code(), fmt::format("tool {}: {}", name, e.what()));
    error.details = e.details();
    return finish(std::move(error));
  } catch (const CapabilityError& e) {
    Error error = make_error("forbidden", fmt::format("tool {}: {}", name, e.what()));
    error.details = fmt::format(R"({{"missing_capability":"{}","extension":"{}"}})", to_string(e.capability()),
                                json::escape(e.extension_id()));
    return finish(std::move(error));
  } catch (const std::exception& e) {
    return finish(make_error("tool_failed", fmt::format("tool {} failed: {}", name, e.what())));
  } catch (...) {
    return finish(make_error("tool_failed", fmt::format("tool {} failed with a non-standard exception", name)));
  }
  if (entry->output) {
    if (auto valid = entry->output->validate(output); !valid) {
      Error e = valid.error();
      e.code = "invalid_output";
      e.message = fmt::format("tool {}: output does not match its output schema at {}", name, e.message);
      return finish(std::move(e));
    }
  }
  return finish(std::move(output));
}

void ToolRegistry::freeze() noexcept { impl_->frozen.store(true); }
bool ToolRegistry::frozen() const noexcept { return impl_->frozen.load(); }

void ToolRegistry::set_resolver(std::function<void(std::string_view)> resolver) {
  std::unique_lock lock(impl_->mutex);
  impl_->resolver = std::move(resolver);
}

std::uint64_t ToolRegistry::generation() const noexcept { return impl_->generation_value(); }

std::uint64_t ToolRegistry::on_change(std::function<void()> listener) const {
  return impl_->add_listener(std::move(listener));
}

void ToolRegistry::remove_listener(std::uint64_t id) const { impl_->drop_listener(id); }

std::vector<ToolStats> ToolRegistry::stats() const {
  std::shared_lock lock(impl_->mutex);
  std::vector<ToolStats> out;
  for (const auto& [name, entry] : impl_->tools) {
    out.push_back(ToolStats{name, entry->info.owner, entry->calls.load(std::memory_order_relaxed),
                            entry->errors.load(std::memory_order_relaxed),
                            static_cast<double>(entry->nanos.load(std::memory_order_relaxed)) / 1e9});
  }
  return out;
}

void ToolRegistrar::add(ToolSpec spec) {
  if (auto r = registry_->add(std::move(spec), extension_id_); !r) throw std::invalid_argument(r.error().message);
}

}  // namespace ORDINAUT_ABI_NAMESPACE
}  // namespace ordinaut
