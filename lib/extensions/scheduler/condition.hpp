// The `if` language of pipeline steps: a small expression language over the
// step's scope (params, steps, event, now), written here by hand.
//
// Why not JMESPath (which the original Ordinaut uses): Debian ships JMESPath
// for Go, JavaScript, Python and Ruby, but no maintained C++ implementation,
// and we do not vendor third-party source. This language covers what step
// conditions need: comparisons, boolean logic, paths and literals.
//
// Grammar (whitespace between tokens is ignored):
//
//   condition  := or
//   or         := and ( "||" and )*
//   and        := comparison ( "&&" comparison )*
//   comparison := unary [ ( "==" | "!=" | "<" | "<=" | ">" | ">=" ) unary ]
//   unary      := "!" unary | primary
//   primary    := literal | path | "(" or ")"
//   literal    := number | string | "true" | "false" | "null"
//   number     := JSON number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
//   string     := '...' or "..." with escapes \\ \' \" \n \t \r
//   path       := root ( "." segment )*      root: params | steps | event | now
//   segment    := [A-Za-z0-9_-]+             (digits index an array)
//
// There is no arithmetic: '-' is a name character ("params.max-size").
// Precedence, loosest first: ||, &&, comparisons, !. So `!a == b` is
// `(!a) == b`, and comparisons do not chain (`a < b < c` is an error).
//
// Semantics:
// - a path that does not resolve is null (a skipped step, an absent param);
// - == and != compare JSON values deeply; numbers by value (1 == 1.0), other
//   types never equal each other ("1" != 1);
// - < <= > >= order two numbers, or two strings (bytewise); any other pair is
//   false (so `steps.s.count > 3` is false when s was skipped);
// - truthiness: false, null, 0, "", [] and {} are false, everything else is
//   true; !, && and || yield booleans, && and || short-circuit;
// - the condition holds when its value is truthy.
//
// Bounds: at most 4096 bytes and 64 levels of nested parentheses and "!".
// Parse errors have code "invalid_condition", a message naming the column
// (1-based) and what was expected, and Error::offset/line/column set.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <ordinaut/json.hpp>
#include <ordinaut/result.hpp>

#include "template.hpp"

namespace ordinaut::scheduler {

inline constexpr std::size_t kMaxConditionLength = 4096;
inline constexpr int kMaxConditionDepth = 64;

class Condition {
 public:
  /// Compiles a condition; see the grammar above.
  static Result<Condition> parse(std::string_view text);

  /// Evaluates against a scope object {"params", "steps", "event", "now"}.
  /// Fails (code "invalid_condition") only when `scope` is not an object.
  Result<bool> evaluate(const JsonValue& scope) const;

  /// The condition as written.
  const std::string& text() const { return text_; }
  /// Every path the condition reads, in order of appearance (for checks at
  /// create time, e.g. that `steps.x` is saved by an earlier step).
  const std::vector<ScopePath>& paths() const { return paths_; }

  struct Node;

 private:
  Condition() = default;
  std::string text_;
  std::shared_ptr<const Node> root_;  // immutable: copies share it
  std::vector<ScopePath> paths_;
};

/// JSON truthiness as the language defines it (see above).
bool truthy(const JsonValue& value);

}  // namespace ordinaut::scheduler
