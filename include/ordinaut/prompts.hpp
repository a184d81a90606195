// Prompts: named message templates with arguments that extensions offer to
// agents (MCP prompts/list, prompts/get, completion/complete) and to the REST
// companion.
//
// Naming: like tools, an extension's prompts are "ext.{id}.{name}"; the host's
// own names never start with "ext.". Names use [A-Za-z0-9_.-], at most 128
// characters.
//
// get() checks the arguments against the declared ones before the prompt's
// function runs: a missing required argument or an unknown one is error
// "invalid_arguments" naming it.
//
// Declared entries: a manifest may declare an extension's prompts
// (`contributes.prompts`), so they are listed before its module is loaded; the
// first get() or completion loads it through the resolver.
//
// Thread safety: PromptRegistry is safe for concurrent use; prompt functions
// run outside its lock.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "ordinaut/json.hpp"
#include "ordinaut/resources.hpp"
#include "ordinaut/result.hpp"
#include "ordinaut/version.hpp"

namespace ordinaut {
inline namespace ORDINAUT_ABI_NAMESPACE {

/// One argument of a prompt.
struct PromptArgument {
  std::string name{};         ///< unique within the prompt
  std::string title{};        ///< optional display name
  std::string description{};  ///< for people and models
  bool required = false;      ///< get() without it fails with "invalid_arguments"
};

/// One content block of a message: text, an image or audio clip (raw bytes,
/// base64-encoded on the wire), or an embedded resource.
struct ContentBlock {
  /// Which of the fields below holds the content.
  enum class Kind : std::uint8_t { text, image, audio, resource };
  Kind kind = Kind::text;  ///< what this block is
  std::string text{};       ///< Kind::text
  std::string data{};       ///< raw bytes: Kind::image, Kind::audio
  std::string mime_type{};  ///< Kind::image, Kind::audio
  ResourceContents resource{};  ///< Kind::resource

  /// A text block.
  static ContentBlock make_text(std::string text);
  /// An image block of raw `bytes` (e.g. "image/png").
  static ContentBlock make_image(std::string bytes, std::string mime_type);
  /// An audio block of raw `bytes` (e.g. "audio/wav").
  static ContentBlock make_audio(std::string bytes, std::string mime_type);
  /// An embedded resource.
  static ContentBlock make_resource(ResourceContents contents);
};

/// One message of a prompt's result.
struct PromptMessage {
  std::string role = "user";  ///< "user" or "assistant"
  ContentBlock content{};     ///< what it says
};

/// What a prompt returns: the messages to hand a model.
struct PromptResult {
  std::string description{};              ///< optional
  std::vector<PromptMessage> messages{};  ///< in order
};

/// Builds the messages from the (checked) arguments. Throw PromptError (or any
/// exception) to fail; the message reaches the client.
using PromptFunction = std::function<PromptResult(const StringMap& arguments)>;

/// A structured failure of a prompt function: the client gets `code` and the message.
class PromptError : public std::runtime_error {
 public:
  /// `code` snake_case, `message` for the client.
  PromptError(std::string code, const std::string& message) : std::runtime_error(message), code_(std::move(code)) {}
  /// The error code.
  const std::string& code() const noexcept { return code_; }

 private:
  std::string code_;
};

/// Designated initializers work: {.name = ..., .get = ...}.
struct PromptSpec {
  std::string name{};                       ///< "ext.{id}.{name}", [A-Za-z0-9_.-]
  std::string title{};                      ///< optional display name
  std::string description{};                ///< for people and models
  std::vector<PromptArgument> arguments{};  ///< checked before `get` runs
  PromptFunction get{};                     ///< required: builds the messages
  CompletionFunction complete{};  ///< optional: values for the arguments
};

/// A registered prompt as listed.
struct PromptInfo {
  std::string name;                       ///< full name, "ext.{id}.{name}"
  std::string title;                      ///< as registered
  std::string description;                ///< as registered
  std::vector<PromptArgument> arguments;  ///< as registered
  std::string owner;      ///< extension id, or "core"
  bool declared = false;  ///< from a manifest; the module is not loaded yet
};

/// Every prompt of the host, by name. Thread-safe.
class PromptRegistry {
 public:
  PromptRegistry();
  ~PromptRegistry();
  PromptRegistry(const PromptRegistry&) = delete;
  PromptRegistry& operator=(const PromptRegistry&) = delete;

  /// Registers a prompt. Errors: "invalid_prompt" (bad name, no get function,
  /// an argument without a name or named twice), "prompt_namespace",
  /// "duplicate_prompt". Replaces the owner's own declaration of the name.
  Result<void> add(PromptSpec spec, std::string_view owner);
  /// Lists a prompt the owner's manifest declares; `get` is ignored.
  Result<void> declare(PromptSpec spec, std::string_view owner);
  /// Removes every prompt and declaration of `owner`; returns how many.
  std::size_t remove_owner(std::string_view owner);
  /// Removes what `owner` registered; its declarations stay.
  std::size_t remove_registered(std::string_view owner);

  /// Sorted by name.
  std::vector<PromptInfo> list() const;
  /// One prompt as listed; nullopt when there is none by that name.
  std::optional<PromptInfo> info(std::string_view name) const;

  /// Gets a prompt. Errors: "prompt_not_found", "invalid_arguments",
  /// "extension_unavailable", "prompt_failed" or a PromptError's own code.
  Result<PromptResult> get(std::string_view name, const StringMap& arguments) const;
  /// Completion for argument `argument` of prompt `name`. Errors:
  /// "prompt_not_found", "invalid_params" (no such argument).
  Result<Completion> complete(std::string_view name, std::string_view argument, std::string_view value,
                              const StringMap& context) const;

  /// For the host that loads `owner`'s code: every entry `owner` registers
  /// from now on keeps `lease` alive while it is registered and while a call
  /// of it runs (see ToolRegistry::hold_for_owner); null stops that.
  void hold_for_owner(std::string_view owner, std::shared_ptr<const void> lease);

  /// Called (outside any lock) with a prompt name that is not registered or
  /// only declared, so a host can load the extension owning it.
  void set_resolver(std::function<void(std::string_view name)> resolver);

  /// Incremented on every add or remove.
  std::uint64_t generation() const noexcept;
  /// Registers a listener called after every add or remove (outside the
  /// registry's lock; keep it short); returns its id.
  std::uint64_t on_change(std::function<void()> listener) const;
  /// Removes a listener of on_change().
  void remove_listener(std::uint64_t id) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Read-only access: what every extension gets.
class PromptView {
 public:
  /// A view of `registry`, which must outlive it.
  explicit PromptView(const PromptRegistry& registry) : registry_(&registry) {}
  /// @copydoc PromptRegistry::list
  std::vector<PromptInfo> list() const { return registry_->list(); }
  /// @copydoc PromptRegistry::info
  std::optional<PromptInfo> info(std::string_view name) const { return registry_->info(name); }
  /// @copydoc PromptRegistry::get
  Result<PromptResult> get(std::string_view name, const StringMap& arguments) const {
    return registry_->get(name, arguments);
  }
  /// @copydoc PromptRegistry::complete
  Result<Completion> complete(std::string_view name, std::string_view argument, std::string_view value,
                              const StringMap& context) const {
    return registry_->complete(name, argument, value, context);
  }
  /// @copydoc PromptRegistry::generation
  std::uint64_t generation() const noexcept { return registry_->generation(); }
  /// @copydoc PromptRegistry::on_change
  std::uint64_t on_change(std::function<void()> listener) const { return registry_->on_change(std::move(listener)); }
  /// @copydoc PromptRegistry::remove_listener
  void remove_listener(std::uint64_t id) const { registry_->remove_listener(id); }

 private:
  const PromptRegistry* registry_;
};

/// Registration handle for one extension (given only with PROMPTS). Names
/// must be "ext.{id}.{name}".
class PromptRegistrar {
 public:
  /// Registers into `registry` as `extension_id` (the host makes one per extension).
  PromptRegistrar(PromptRegistry& registry, std::string extension_id)
      : registry_(&registry), extension_id_(std::move(extension_id)) {}
  /// Registers a prompt (PromptRegistry::add). Throws std::invalid_argument
  /// with the registry's message on failure.
  void add(PromptSpec spec);
  /// Result-returning variant of add().
  Result<void> try_add(PromptSpec spec) { return registry_->add(std::move(spec), extension_id_); }
  /// "ext.{id}."
  std::string prefix() const { return "ext." + extension_id_ + "."; }

 private:
  PromptRegistry* registry_;
  std::string extension_id_;
};

/// The MCP ContentBlock object of `block`.
Json to_json(const ContentBlock& block);
/// The MCP GetPromptResult: {"description"?, "messages": [{role, content}]}.
Json to_json(const PromptResult& result);
/// The MCP Prompt object of `info`.
Json to_json(const PromptInfo& info);
/// The MCP CompleteResult: {"completion": {"values", "total", "hasMore"}}.
Json to_json(const Completion& completion);

}  // namespace ORDINAUT_ABI_NAMESPACE
}  // namespace ordinaut
