// parse_abi_note (lib/host/abi_note.cpp): any bytes as a module file, read
// through a bounds-checking reader. Invariants: the parser never asks for a
// byte past the end of the file (it checks every offset and size itself),
// never reads more than the section table and note limits allow, and a note
// it returns has a runtime tag without NUL.
#include <cstdint>
#include <cstring>

#include "fuzz_support.hpp"
#include "host/abi_note.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace ordinaut::detail;
  std::uint64_t total = 0;
  auto read = [&](std::uint64_t offset, std::size_t n, unsigned char* out) {
    fuzz::require(offset <= size && n <= size - offset, "a read past the end of the file");
    total += n;
    // e_ident, the ELF header, section 0 (extended numbering), the table, the notes.
    fuzz::require(total <= 16 + 64 + 64 + kMaxSections * 64 + kMaxTotalNoteBytes,
                  "more bytes read than the limits allow");
    if (n > 0) std::memcpy(out, data + offset, n);
    return true;
  };
  auto abi = parse_abi_note(size, read);
  if (abi) {
    fuzz::require(abi->runtime.find('\0') == std::string::npos, "a runtime tag with a NUL");
  } else {
    fuzz::require(abi.error().code == "module_invalid" || abi.error().code == "abi_note_missing",
                  "an unexpected error code");
    fuzz::require(!abi.error().message.empty(), "an error without a message");
  }
  return 0;
}
