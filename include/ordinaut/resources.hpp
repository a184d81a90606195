// Resources: named, readable content that extensions offer to agents (MCP
// resources/list, resources/read, resources/templates/list,
// resources/subscribe) and to the REST companion.
//
// A resource is either static (a fixed URI) or a URI template (RFC 6570
// level 1: "{name}" matches one or more characters other than '/', "{+name}"
// any non-empty text). Reading returns one or more ResourceContents, text or
// binary (binary bytes are base64-encoded only on the wire).
//
// Naming: URIs are namespaced per extension. An extension's URIs start with
// "ext://{id}/", or with a scheme it claims in its manifest
// (`contributes.uriSchemes`, e.g. "test" for "test://..."); a scheme is
// claimed by one extension at most, and "ext", "ordinaut", "http", "https",
// "file", "data" and "javascript" can never be claimed. The host ("core")
// uses "ordinaut://".
//
// Declared entries: a manifest may declare an extension's resources and
// templates (`contributes`), so they are listed before its module is loaded.
// Reading one loads the extension (the registry's resolver) and is then served
// by what the module registered.
//
// Thread safety: ResourceRegistry is safe for concurrent use; read functions
// run outside its lock.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "ordinaut/json.hpp"
#include "ordinaut/result.hpp"
#include "ordinaut/version.hpp"

namespace ordinaut {
inline namespace ORDINAUT_ABI_NAMESPACE {

/// Variables of a template match, or arguments of a prompt, by name.
using StringMap = std::map<std::string, std::string, std::less<>>;

/// One piece of a resource's content.
struct ResourceContents {
  std::string uri;          ///< the URI these contents belong to
  std::string mime_type{};  ///< e.g. "application/json"; may be empty
  std::string text{};  ///< the content when !binary (UTF-8)
  std::string blob{};  ///< raw bytes when binary
  bool binary = false;  ///< which of text and blob holds the content

  /// An empty `uri` or `mime_type` is filled in by the registry: the URI read
  /// and the resource's own MIME type.
  static ResourceContents make_text(std::string uri, std::string text, std::string mime_type = {});
  /// Binary contents (base64-encoded on the wire); empty fields as make_text().
  static ResourceContents make_blob(std::string uri, std::string bytes, std::string mime_type = {});
};

/// What a read function receives: the URI asked for and, for a template, the
/// values of its variables.
struct ResourceRequest {
  std::string uri;       ///< as the client asked for it
  StringMap variables;   ///< a template's variables (decoded); empty for a static resource
};

/// Produces a resource's contents. Throw ResourceError (or any exception) to
/// fail the read; the message reaches the client.
using ResourceReadFunction = std::function<std::vector<ResourceContents>(const ResourceRequest& request)>;

/// Suggests values for one variable or argument: `name` is the variable,
/// `value` what the client has typed so far, `context` the values already
/// chosen for the others. Return candidates (the registry keeps the first 100
/// and reports the total).
using CompletionFunction =
    std::function<std::vector<std::string>(std::string_view name, std::string_view value, const StringMap& context)>;

/// A structured failure of a read function: the client gets `code` and the message.
class ResourceError : public std::runtime_error {
 public:
  /// `code` snake_case, `message` for the client.
  ResourceError(std::string code, const std::string& message)
      : std::runtime_error(message), code_(std::move(code)) {}
  /// The error code.
  const std::string& code() const noexcept { return code_; }

 private:
  std::string code_;
};

/// A static resource. Designated initializers work: {.uri = ..., .read = ...}.
struct ResourceSpec {
  std::string uri{};          ///< "ext://{id}/..." or a scheme the manifest claims
  std::string name{};         ///< required: a short name
  std::string title{};        ///< optional display name
  std::string description{};  ///< optional
  std::string mime_type{};    ///< optional
  ResourceReadFunction read{};  ///< required: produces the contents
};

/// A URI template, e.g. "ext://notes/{id}/text".
struct ResourceTemplateSpec {
  std::string uri_template{};  ///< RFC 6570 level 1: {name} stops at '/', {+name} does not
  std::string name{};          ///< required: a short name
  std::string title{};         ///< optional display name
  std::string description{};   ///< optional
  std::string mime_type{};     ///< optional
  ResourceReadFunction read{};  ///< required: produces the contents of a matching URI
  CompletionFunction complete{};  ///< optional: values for the template's variables
};

/// A registered resource or template as listed. `uri` holds the template for
/// templates.
struct ResourceInfo {
  std::string uri;          ///< the URI, or the URI template
  std::string name;         ///< as registered
  std::string title;        ///< as registered
  std::string description;  ///< as registered
  std::string mime_type;    ///< as registered
  std::string owner;      ///< extension id, or "core"
  bool template_ = false;  ///< a template (`uri` holds it)
  bool declared = false;  ///< from a manifest; the module is not loaded yet
};

/// Completion candidates as MCP's completion/complete returns them.
struct Completion {
  std::vector<std::string> values;  ///< at most 100
  std::size_t total = 0;   ///< candidates found, also beyond the 100
  bool has_more = false;   ///< total > values.size()
};

/// Every resource and URI template of the host. Thread-safe.
class ResourceRegistry {
 public:
  ResourceRegistry();
  ~ResourceRegistry();
  ResourceRegistry(const ResourceRegistry&) = delete;
  ResourceRegistry& operator=(const ResourceRegistry&) = delete;

  /// Registers a static resource. Errors: "invalid_resource" (bad URI, no
  /// name, no read function), "resource_namespace" (outside the owner's
  /// namespace), "duplicate_resource" (already registered, or declared by
  /// another owner). Replaces the owner's own declaration of the same URI.
  Result<void> add(ResourceSpec spec, std::string_view owner);
  /// Registers a template. Errors as add(), plus "invalid_resource" for a
  /// template that does not parse (unclosed brace, empty or repeated name).
  Result<void> add_template(ResourceTemplateSpec spec, std::string_view owner);
  /// Lists a resource or template the owner's manifest declares; its read
  /// function is ignored. Reading it calls the resolver with the owner.
  Result<void> declare(ResourceSpec spec, std::string_view owner);
  /// declare() for a template.
  Result<void> declare_template(ResourceTemplateSpec spec, std::string_view owner);
  /// Lets `owner` use "{scheme}://" URIs. Error "resource_namespace" when the
  /// scheme is reserved, malformed or claimed by another owner.
  Result<void> claim_scheme(std::string_view scheme, std::string_view owner);
  /// Removes every resource, template and declaration of `owner` (claimed
  /// schemes stay). Returns how many entries went.
  std::size_t remove_owner(std::string_view owner);
  /// Removes only what `owner` registered, putting nothing back; its
  /// declarations stay. Returns how many entries went.
  std::size_t remove_registered(std::string_view owner);

  /// Static resources, then templates, each sorted by URI.
  std::vector<ResourceInfo> list() const;
  /// Templates, sorted by URI template.
  std::vector<ResourceInfo> list_templates() const;

  /// Reads a URI: a static resource, else the first template (in URI order)
  /// that matches it. Errors: "resource_not_found", "extension_unavailable"
  /// (declared, but its extension did not load), "read_failed" or a
  /// ResourceError's own code.
  Result<std::vector<ResourceContents>> read(std::string_view uri) const;

  /// Completion for variable `name` of template `uri_template`. Errors:
  /// "resource_not_found" (no such template), "invalid_params" (no such
  /// variable). A template without a completion function gives no values.
  Result<Completion> complete(std::string_view uri_template, std::string_view name, std::string_view value,
                              const StringMap& context) const;

  /// Calls `listener(uri)` after every notify_updated() of `uri`. Returns an
  /// id for unsubscribe(). The listener runs on the notifying thread: keep it
  /// short.
  std::uint64_t subscribe(std::string_view uri, std::function<void(std::string_view uri)> listener) const;
  /// Removes a subscription of subscribe(); no effect for an unknown id.
  void unsubscribe(std::uint64_t id) const;
  /// Tells subscribers of `uri` that its content changed; returns how many
  /// were told.
  std::size_t notify_updated(std::string_view uri) const;

  /// For the host that loads `owner`'s code: every entry `owner` registers
  /// from now on keeps `lease` alive while it is registered and while a call
  /// of it runs (see ToolRegistry::hold_for_owner); null stops that.
  void hold_for_owner(std::string_view owner, std::shared_ptr<const void> lease);

  /// Called (outside any lock) with the owner of a declared entry before it is
  /// read or completed, so a host can load that extension.
  void set_resolver(std::function<void(std::string_view owner)> resolver);

  /// Incremented on every change of the lists.
  std::uint64_t generation() const noexcept;
  /// Listener called after every change of the lists (outside the lock).
  std::uint64_t on_change(std::function<void()> listener) const;
  /// Removes a listener of on_change().
  void remove_listener(std::uint64_t id) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Read-only access (with subscriptions): what every extension gets.
class ResourceView {
 public:
  /// A view of `registry`, which must outlive it.
  explicit ResourceView(const ResourceRegistry& registry) : registry_(&registry) {}
  /// @copydoc ResourceRegistry::list
  std::vector<ResourceInfo> list() const { return registry_->list(); }
  /// @copydoc ResourceRegistry::list_templates
  std::vector<ResourceInfo> list_templates() const { return registry_->list_templates(); }
  /// @copydoc ResourceRegistry::read
  Result<std::vector<ResourceContents>> read(std::string_view uri) const { return registry_->read(uri); }
  /// @copydoc ResourceRegistry::complete
  Result<Completion> complete(std::string_view uri_template, std::string_view name, std::string_view value,
                              const StringMap& context) const {
    return registry_->complete(uri_template, name, value, context);
  }
  /// @copydoc ResourceRegistry::subscribe
  std::uint64_t subscribe(std::string_view uri, std::function<void(std::string_view)> listener) const {
    return registry_->subscribe(uri, std::move(listener));
  }
  /// @copydoc ResourceRegistry::unsubscribe
  void unsubscribe(std::uint64_t id) const { registry_->unsubscribe(id); }
  /// @copydoc ResourceRegistry::generation
  std::uint64_t generation() const noexcept { return registry_->generation(); }
  /// @copydoc ResourceRegistry::on_change
  std::uint64_t on_change(std::function<void()> listener) const { return registry_->on_change(std::move(listener)); }
  /// @copydoc ResourceRegistry::remove_listener
  void remove_listener(std::uint64_t id) const { registry_->remove_listener(id); }

 private:
  const ResourceRegistry* registry_;
};

/// Registration handle for one extension (given only with RESOURCES).
class ResourceRegistrar {
 public:
  /// Registers into `registry` as `extension_id` (the host makes one per extension).
  ResourceRegistrar(ResourceRegistry& registry, std::string extension_id)
      : registry_(&registry), extension_id_(std::move(extension_id)) {}

  /// Registers a resource; throws std::invalid_argument with the registry's
  /// message on failure (setup then fails with that reason).
  void add(ResourceSpec spec);
  /// Registers a template; throws as add().
  void add_template(ResourceTemplateSpec spec);
  /// Result-returning variant of add().
  Result<void> try_add(ResourceSpec spec) { return registry_->add(std::move(spec), extension_id_); }
  /// Result-returning variant of add_template().
  Result<void> try_add_template(ResourceTemplateSpec spec) {
    return registry_->add_template(std::move(spec), extension_id_);
  }
  /// Tells subscribers that `uri` changed.
  std::size_t notify_updated(std::string_view uri) const { return registry_->notify_updated(uri); }
  /// "ext://{id}/" — the prefix every URI of this extension may use.
  std::string prefix() const { return "ext://" + extension_id_ + "/"; }

 private:
  ResourceRegistry* registry_;
  std::string extension_id_;
};

/// The MCP form of contents: {"uri", "mimeType"?, "text"} or {"uri",
/// "mimeType"?, "blob": base64}.
Json to_json(const ResourceContents& contents);
/// The MCP Resource / ResourceTemplate object of an entry.
Json to_json(const ResourceInfo& info);

/// Standard base64 (RFC 4648, with padding).
std::string base64_encode(std::string_view bytes);

/// Matches `uri` against an RFC 6570 level-1 template; the variables on a
/// match, nullopt otherwise (also for a malformed template).
std::optional<StringMap> match_uri_template(std::string_view uri_template, std::string_view uri);

}  // namespace ORDINAUT_ABI_NAMESPACE
}  // namespace ordinaut
