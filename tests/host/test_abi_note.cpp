// The ABI note of extension modules (lib/host/abi_note.hpp): the ELF reader on
// made-up files (well-formed, hostile, truncated), on the real test modules,
// and the host reporting a mismatch, a missing note or a broken file at
// discovery, without ever loading the module.
#include <doctest/doctest.h>

#include <dlfcn.h>
#include <elf.h>

#include <cstring>
#include <fstream>

#include <ordinaut/host.hpp>

#include "host/abi_note.hpp"
#include "host_support.hpp"

using ordinaut::ExtensionHost;
using ordinaut::Json;
using ordinaut::detail::ModuleAbi;
using ordinaut::detail::parse_abi_note;
using ordinaut::detail::read_abi_note;
using namespace test_support;

namespace {

using Bytes = std::vector<unsigned char>;

void put32(Bytes& b, std::uint32_t v) {
  const auto* p = reinterpret_cast<const unsigned char*>(&v);
  b.insert(b.end(), p, p + 4);
}

void pad4(Bytes& b) {
  while (b.size() % 4 != 0) b.push_back(0);
}

// One ELF note: header, name (with its NUL) and descriptor, each padded to 4.
Bytes note(const std::string& name, std::uint32_t type, const Bytes& desc) {
  Bytes b;
  put32(b, static_cast<std::uint32_t>(name.size() + 1));
  put32(b, static_cast<std::uint32_t>(desc.size()));
  put32(b, type);
  b.insert(b.end(), name.begin(), name.end());
  b.push_back(0);
  pad4(b);
  b.insert(b.end(), desc.begin(), desc.end());
  pad4(b);
  return b;
}

Bytes abi_desc(std::uint32_t abi, const std::string& runtime, std::size_t runtime_bytes = 64) {
  Bytes d;
  put32(d, abi);
  Bytes r(runtime_bytes, 0);
  std::memcpy(r.data(), runtime.data(), std::min(runtime.size(), runtime_bytes));
  d.insert(d.end(), r.begin(), r.end());
  return d;
}

Bytes abi_note(std::uint32_t abi, const std::string& runtime = ORDINAUT_STDLIB_ID) {
  return note("Ordinaut", 1, abi_desc(abi, runtime));
}

// A 64-bit shared object for this machine: ELF header, the section header
// table (a null section, then one SHT_NOTE section per element of `notes`),
// then the notes' bytes.
Bytes make_elf(const std::vector<Bytes>& notes) {
  Elf64_Ehdr h{};
  std::memcpy(h.e_ident, ELFMAG, SELFMAG);
  h.e_ident[EI_CLASS] = ELFCLASS64;
  h.e_ident[EI_DATA] = ELFDATA2LSB;
  h.e_ident[EI_VERSION] = EV_CURRENT;
  h.e_type = ET_DYN;
  h.e_machine = EM_X86_64;
  h.e_version = EV_CURRENT;
  h.e_ehsize = sizeof(Elf64_Ehdr);
  h.e_shoff = sizeof(Elf64_Ehdr);
  h.e_shentsize = sizeof(Elf64_Shdr);
  h.e_shnum = static_cast<Elf64_Half>(notes.size() + 1);
  std::vector<Elf64_Shdr> sections(notes.size() + 1);
  std::uint64_t data_at = sizeof(Elf64_Ehdr) + sections.size() * sizeof(Elf64_Shdr);
  for (std::size_t i = 0; i < notes.size(); ++i) {
    Elf64_Shdr& s = sections[i + 1];
    s.sh_type = SHT_NOTE;
    s.sh_flags = SHF_ALLOC;
    s.sh_offset = data_at;
    s.sh_size = notes[i].size();
    s.sh_addralign = 4;
    data_at += notes[i].size();
  }
  Bytes out(sizeof h);
  std::memcpy(out.data(), &h, sizeof h);
  for (const auto& s : sections) {
    const auto* p = reinterpret_cast<const unsigned char*>(&s);
    out.insert(out.end(), p, p + sizeof s);
  }
  for (const auto& n : notes) out.insert(out.end(), n.begin(), n.end());
  return out;
}

Elf64_Ehdr header_of(const Bytes& b) {
  Elf64_Ehdr h;
  std::memcpy(&h, b.data(), sizeof h);
  return h;
}
void set_header(Bytes& b, const Elf64_Ehdr& h) { std::memcpy(b.data(), &h, sizeof h); }
Elf64_Shdr section_of(const Bytes& b, std::size_t i) {
  Elf64_Shdr s;
  std::memcpy(&s, b.data() + sizeof(Elf64_Ehdr) + i * sizeof(Elf64_Shdr), sizeof s);
  return s;
}
void set_section(Bytes& b, std::size_t i, const Elf64_Shdr& s) {
  std::memcpy(b.data() + sizeof(Elf64_Ehdr) + i * sizeof(Elf64_Shdr), &s, sizeof s);
}

ordinaut::Result<ModuleAbi> parse(const Bytes& b) {
  return parse_abi_note(b.size(), [&b](std::uint64_t offset, std::size_t size, unsigned char* out) {
    REQUIRE(offset <= b.size());  // the parser checks bounds before it reads
    REQUIRE(size <= b.size() - offset);
    std::memcpy(out, b.data() + offset, size);
    return true;
  });
}

// The error of a parse that must fail, with its code checked.
std::string parse_error(const Bytes& b, const std::string& code = "module_invalid") {
  auto r = parse(b);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == code);
  return r.error().message;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// Whether this process has the module loaded (RTLD_NOLOAD loads nothing).
bool loaded(const std::filesystem::path& module) {
  void* handle = ::dlopen(module.c_str(), RTLD_NOW | RTLD_NOLOAD);
  if (handle == nullptr) return false;
  ::dlclose(handle);
  return true;
}

void write_bytes(const std::filesystem::path& file, const Bytes& bytes) {
  std::filesystem::create_directories(file.parent_path());
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

Bytes read_bytes(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), {});
}

struct Host {
  TempDir root;
  LogCapture logs;
  std::unique_ptr<ExtensionHost> host;
  ExtensionHost& start() {
    host = std::make_unique<ExtensionHost>(host_options(logs, {root.path()}));
    REQUIRE(host->start().ok());
    return *host;
  }
};

// The discovery error of `file`, or "" when there is none.
std::string discovery_error(ExtensionHost& host, const std::filesystem::path& file) {
  Json status = host.status();
  for (auto& e : status["discovery_errors"].GetArray()) {
    if (str(e["file"]) == file.string()) return str(e["error"]);
  }
  return "";
}

}  // namespace

#if defined(__x86_64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__

TEST_CASE("abi note: found in a well-formed file, beside other notes") {
  auto abi = parse(make_elf({note("GNU", 3, Bytes(20, 7)), abi_note(7, "libstdc++-1")}));
  REQUIRE(abi.ok());
  CHECK(abi->abi_version == 7);
  CHECK(abi->runtime == "libstdc++-1");
  // Two sections carrying the same note are fine; two that disagree are not.
  CHECK(parse(make_elf({abi_note(7), abi_note(7)})).ok());
  CHECK(contains(parse_error(make_elf({abi_note(7), abi_note(8)})), "two ABI notes that disagree"));
}

TEST_CASE("abi note: a file without it, or without section headers, says the note is missing") {
  CHECK(contains(parse_error(make_elf({note("GNU", 3, Bytes(20, 7))}), "abi_note_missing"), "no Ordinaut ABI note"));
  CHECK(contains(parse_error(make_elf({}), "abi_note_missing"), "no Ordinaut ABI note"));
  // Same name, another type: not the ABI note.
  CHECK(parse_error(make_elf({note("Ordinaut", 2, abi_desc(1, "x"))}), "abi_note_missing").size() > 0);
  Bytes no_table = make_elf({abi_note(1)});
  auto h = header_of(no_table);
  h.e_shoff = 0;
  set_header(no_table, h);
  CHECK(contains(parse_error(no_table, "abi_note_missing"), "no section headers"));
}

TEST_CASE("abi note: files that are no 64-bit shared object for this machine are refused by name") {
  CHECK(contains(parse_error(Bytes{}), "not an ELF file"));
  CHECK(contains(parse_error(Bytes{'#', '!', '/', 'b', 'i', 'n', '/', 's', 'h', '\n'}), "not an ELF file"));
  Bytes good = make_elf({abi_note(1)});
  auto with = [&](auto change) {
    Bytes b = good;
    auto h = header_of(b);
    change(h);
    set_header(b, h);
    return parse_error(b);
  };
  CHECK(contains(with([](Elf64_Ehdr& h) { h.e_ident[EI_CLASS] = ELFCLASS32; }), "32-bit ELF"));
  CHECK(contains(with([](Elf64_Ehdr& h) { h.e_ident[EI_CLASS] = 9; }), "ELF class is unknown"));
  CHECK(contains(with([](Elf64_Ehdr& h) { h.e_ident[EI_DATA] = ELFDATA2MSB; }), "byte order"));
  CHECK(contains(with([](Elf64_Ehdr& h) { h.e_type = ET_EXEC; }), "not a shared object"));
  CHECK(contains(with([](Elf64_Ehdr& h) { h.e_machine = EM_AARCH64; }), "ELF machine 183"));
  CHECK(contains(with([](Elf64_Ehdr& h) { h.e_shentsize = 40; }), "section header size is 40"));
}

TEST_CASE("abi note: every truncation of a module is refused cleanly") {
  Bytes good = make_elf({note("GNU", 3, Bytes(20, 7)), abi_note(1)});
  REQUIRE(parse(good).ok());
  for (std::size_t n = 0; n < good.size(); ++n) {
    CAPTURE(n);
    Bytes cut(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(n));
    auto r = parse(cut);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == "module_invalid");
  }
}

TEST_CASE("abi note: hostile sizes and offsets are refused before anything is read") {
  Bytes good = make_elf({abi_note(1)});
  SUBCASE("a section count past the limit (extended numbering)") {
    Bytes b = good;
    auto h = header_of(b);
    h.e_shnum = 0;  // the count is then in section 0's sh_size
    set_header(b, h);
    auto zero = section_of(b, 0);
    zero.sh_size = 0xffffffffffffULL;
    set_section(b, 0, zero);
    CHECK(contains(parse_error(b), "claims 281474976710655 sections"));
  }
  SUBCASE("a section header table past the end") {
    Bytes b = good;
    auto h = header_of(b);
    h.e_shoff = 0xfffffffffffffff0ULL;  // offset + size overflows
    set_header(b, h);
    CHECK(contains(parse_error(b), "past the end of the file"));
  }
  SUBCASE("a note section past the end, or huge") {
    Bytes b = good;
    auto s = section_of(b, 1);
    s.sh_offset = 0xffffffffffffff00ULL;
    set_section(b, 1, s);
    CHECK(contains(parse_error(b), "past the end of the file"));
    s = section_of(good, 1);
    s.sh_size = 1ULL << 40;
    set_section(b, 1, s);
    CHECK(contains(parse_error(b), "more than 65536"));
  }
  SUBCASE("a note larger than its section") {
    Bytes n = abi_note(1);
    const std::uint32_t huge = 0xffffffffU;
    std::memcpy(n.data() + 4, &huge, 4);  // descsz
    CHECK(contains(parse_error(make_elf({n})), "larger than its section"));
    n = abi_note(1);
    std::memcpy(n.data(), &huge, 4);  // namesz
    CHECK(contains(parse_error(make_elf({n})), "larger than its section"));
  }
  SUBCASE("a runtime tag without its NUL, a descriptor too short") {
    Bytes desc;
    put32(desc, 1);
    for (int i = 0; i < 8; ++i) desc.push_back('x');
    CHECK(contains(parse_error(make_elf({note("Ordinaut", 1, desc)})), "not NUL-terminated"));
    CHECK(contains(parse_error(make_elf({note("Ordinaut", 1, Bytes{1, 0, 0, 0})})), "too short"));
  }
  SUBCASE("a note header cut short inside its section") {
    Bytes n = abi_note(1);
    n.insert(n.end(), {1, 2, 3, 4, 5, 6, 7, 8});  // 8 stray bytes: less than a note header
    CHECK(contains(parse_error(make_elf({n})), "truncated"));
  }
}

#endif  // x86-64: the made-up files above are little-endian x86-64 ELF

TEST_CASE("abi note: the test modules carry the note their build gave them") {
  auto good = read_abi_note(test_module("good"));
  REQUIRE(good.ok());
  CHECK(good->abi_version == ORDINAUT_ABI_VERSION);
  CHECK(good->runtime == ORDINAUT_STDLIB_ID);
  auto abi999 = read_abi_note(test_module("abi999"));
  REQUIRE(abi999.ok());
  CHECK(abi999->abi_version == 999);
  auto none = read_abi_note(test_module("no_note"));
  REQUIRE_FALSE(none.ok());
  CHECK(none.error().code == "abi_note_missing");
  CHECK(ordinaut::detail::check_module_abi(test_module("good")).ok());
  auto missing = read_abi_note(test_module("good").parent_path() / "nothing_here.so");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().code == "module_not_found");
}

TEST_CASE("abi note: a lazy module of another ABI is an error at discovery, naming both, and never loaded") {
  Host h;
  auto dir =
      make_extension(h.root.path(), "abi999", manifest_json("abi999", "abi999_ext.so", R"(["ROUTES"])"), "abi999");
  ExtensionHost& host = h.start();
  Json x = extension_status(host, "abi999");
  CHECK(str(x["state"]) == "error");
  CHECK(str(x["error_phase"]) == "discovery");
  const std::string reason = str(x["last_error"]);
  CHECK(contains(reason, "ABI version 999"));
  CHECK(contains(reason, "ABI version " + std::to_string(ORDINAUT_ABI_VERSION)));
  CHECK(contains(reason, ORDINAUT_STDLIB_ID));
  CHECK(discovery_error(host, dir / "extension.json") == reason);
  // Neither a request nor an explicit load nor enable dlopens it.
  Json err = expect_error(send(host, "GET", "/ext/abi999/"), 503, "unavailable");
  CHECK(contains(str(err["message"]), "ABI version 999"));
  CHECK_FALSE(host.load("abi999").ok());
  // enable retries: the next use reads the note again, before any dlopen.
  REQUIRE(host.enable("abi999").ok());
  CHECK(str(extension_status(host, "abi999")["state"]) == "discovered");
  CHECK(expect_error(send(host, "GET", "/ext/abi999/"), 503, "unavailable")["message"].IsString());
  x = extension_status(host, "abi999");
  CHECK(str(x["state"]) == "error");
  CHECK(str(x["error_phase"]) == "load");
  CHECK(contains(str(x["last_error"]), "ABI version 999"));
  CHECK_FALSE(loaded(test_module("abi999")));
}

TEST_CASE("abi note: a module without the note, or for another C++ runtime, is a clear discovery error") {
  Host h;
  auto no_note = make_extension(h.root.path(), "no_note", manifest_json("no_note", "no_note_ext.so", "[]"), "no_note");
  auto other = make_extension(h.root.path(), "other_runtime",
                              manifest_json("other_runtime", "other_runtime_ext.so", "[]"), "other_runtime");
  ExtensionHost& host = h.start();
  const std::string missing = discovery_error(host, no_note / "extension.json");
  CHECK(contains(missing, "no Ordinaut ABI note (section .note.ordinaut)"));
  CHECK(contains(missing, "ORDINAUT_EXTENSION(YourClass)"));
  CHECK(str(extension_status(host, "no_note")["state"]) == "error");
  const std::string runtime = discovery_error(host, other / "extension.json");
  CHECK(contains(runtime, "C++ runtime libc++-990000"));
  CHECK(contains(runtime, std::string("this host uses ") + ORDINAUT_STDLIB_ID));
  CHECK(str(extension_status(host, "other_runtime")["state"]) == "error");
  CHECK_FALSE(loaded(test_module("no_note")));
  CHECK_FALSE(loaded(test_module("other_runtime")));
  CHECK(h.logs.count("extension_refused", "no_note") == 1);
}

TEST_CASE("abi note: a garbage or truncated module file is a discovery error; enable retries after a fix") {
  Host h;
  auto garbage = make_extension(h.root.path(), "garbage", manifest_json("garbage", "garbage.so", "[]"));
  write_file(garbage / "garbage.so", "this is not a shared object\n");
  auto cut = make_extension(h.root.path(), "good", manifest_json("good", "good_ext.so", R"(["ROUTES"])"));
  const Bytes module = read_bytes(test_module("good"));
  REQUIRE(module.size() > 4096);
  write_bytes(cut / "good_ext.so", Bytes(module.begin(), module.begin() + 4096));  // section headers are at the end
  ExtensionHost& host = h.start();
  CHECK(contains(discovery_error(host, garbage / "extension.json"),
                 "is not a loadable extension module: it is not an ELF file"));
  CHECK(contains(discovery_error(host, cut / "extension.json"), "past the end of the file (truncated?)"));
  CHECK(str(extension_status(host, "garbage")["state"]) == "error");
  CHECK(str(extension_status(host, "good")["state"]) == "error");
  // The whole file arrives: enabling the extension reads the note again and loads it.
  write_bytes(cut / "good_ext.so", module);
  REQUIRE(host.enable("good").ok());
  CHECK(send(host, "GET", "/ext/good/items/3").status == 200);
  CHECK(str(extension_status(host, "good")["state"]) == "active");
}
