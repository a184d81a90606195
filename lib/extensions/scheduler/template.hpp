// Pipeline templates: "${params.x}", "${steps.<save_as>.a.b}", "${now}",
// "${event}" / "${event.payload.k}" inside the string values of a step's
// `with`, and the scope paths that templates and `if` conditions share.
//
// A scope is the JSON object {"params": .., "steps": {<save_as>: output},
// "now": "<RFC 3339 UTC>", "event": <event or null>} the executor builds for
// each step. A path is a root (params, steps, now, event) followed by
// dot-separated segments of [A-Za-z0-9_-]; a segment looks up an object
// member by name, or, when the value is an array and the segment is all
// digits, an element by index ("steps.s.items.0.id").
//
// Rendering rules (docs/scheduler.md, "Pipelines"):
// - a string that is exactly one "${...}" becomes the value at the path with
//   its JSON type (number, object, ...);
// - "${...}" embedded in a longer string is replaced by the value's text: a
//   string as is, anything else as its compact JSON ("42", "true", "null");
// - "$${" stands for a literal "${";
// - object keys are never rendered, only string values, at any depth;
// - a path that does not resolve is an error (code "template_error") naming
//   the template and what is missing, with `pointer` the JSON pointer of the
//   string inside the rendered value.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <ordinaut/json.hpp>
#include <ordinaut/result.hpp>

namespace ordinaut::scheduler {

/// The roots a path may start with.
inline constexpr std::string_view kScopeRoots[] = {"params", "steps", "now", "event"};

/// A parsed scope path: root plus segments; `text` is the path as written
/// ("params.user.name"), for messages.
struct ScopePath {
  std::string root;
  std::vector<std::string> segments;
  std::string text;
};

/// At most this many segments after the root (bounds lookups and messages).
inline constexpr std::size_t kMaxPathSegments = 32;

/// True for a character allowed in a path segment: [A-Za-z0-9_-].
bool is_path_char(char c) noexcept;

/// Parses "root.seg.seg". Fails (code "template_error") on an empty segment,
/// a character outside [A-Za-z0-9_-], too many segments or an unknown root;
/// the message names the path and the problem.
Result<ScopePath> parse_scope_path(std::string_view text);

/// Follows `path` in `scope` (an object holding the roots). Returns the value,
/// or nullptr with `why` (if given) saying which step of the lookup failed,
/// e.g. `params.user has no member "name"`.
const JsonValue* resolve_path(const JsonValue& scope, const ScopePath& path, std::string* why = nullptr);

/// One piece of a string value: literal text, or a template path.
struct TemplatePiece {
  bool is_path = false;
  std::string literal;  ///< when !is_path ("$${" already unescaped to "${")
  ScopePath path;       ///< when is_path
};

/// Splits a string into literal text and "${...}" paths. Fails (code
/// "template_error") on an unterminated "${", an empty "${}" or a bad path.
Result<std::vector<TemplatePiece>> parse_template(std::string_view text);

/// True when `text` holds a "${" that is not the escape "$${".
bool has_template(std::string_view text);

/// True when a string anywhere inside `value` (not keys) holds a template.
bool contains_template(const JsonValue& value);

/// Calls `visit(pointer, pieces)` for every string inside `value` that holds
/// templates, in document order, with the JSON pointer of the string relative
/// to `value`. Stops at the first error (a bad template, or one `visit`
/// returns), whose `pointer` is set. Depth is bounded (512 levels).
Result<void> for_each_template(
    const JsonValue& value,
    const std::function<Result<void>(const std::string& pointer, const std::vector<TemplatePiece>& pieces)>& visit);

/// Renders every string value inside `value` against `scope` (see the rules
/// above). Errors carry code "template_error" and the pointer of the string.
Result<Json> render(const JsonValue& value, const JsonValue& scope);

/// `text` cut to at most `max` bytes (on a UTF-8 character boundary) with
/// "..." appended when cut: user input echoed in error messages stays short.
std::string excerpt(std::string_view text, std::size_t max = 64);

}  // namespace ordinaut::scheduler
