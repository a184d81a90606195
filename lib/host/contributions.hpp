// Contributions: what a manifest's "contributes" object declares (tools,
// resources, resource templates, prompts, URI schemes), listed before the
// module is loaded and checked against what the module registers. Internal to
// the host.
//
// Owns: the declarations of one entry in the shared registries, and the rule
// that a module registers exactly what its manifest declares.
//
// Locking: every function REQUIRES the entry's load_mutex (or runs before the
// host starts serving); the registries lock themselves.
#pragma once

#include "host/entry.hpp"
#include "host/services.hpp"
#include "ordinaut/result.hpp"

namespace ordinaut::detail {

// Lists the entry's declared contributions (a no-op without a manifest or
// without "contributes"). On a failure (a name or URI another extension
// already holds, a scheme claimed twice) nothing of the entry stays declared
// and the error names the entry and the clash.
Result<void> declare_contributions(HostServices& services, const Entry& entry);

// Removes everything the entry registered or declared, in all registries.
void withdraw_contributions(HostServices& services, const Entry& entry);

// After setup(): with "contributes" in the manifest, the module must have
// registered exactly the declared tools, resources, templates and prompts,
// with the same descriptions and schemas. The error names each difference
// ("tool ext.a.b: inputSchema differs (manifest ..., module ...)", "module
// registered prompt ext.a.c that the manifest does not declare", ...).
Result<void> check_contributions(HostServices& services, const Entry& entry);

}  // namespace ordinaut::detail
