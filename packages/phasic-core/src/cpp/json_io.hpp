// Minimal strict JSON reading and fast writing for the phasic graph schema.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace phasic {

// A field path such as "edges.to[17]" or "states[3][1]", formatted only on error so
// that reading millions of numbers allocates nothing.
struct Path {
  std::string_view base;
  int64_t i = -1;
  int64_t j = -1;
  std::string str() const;
};

// A cursor over JSON text. Every error throws std::invalid_argument whose message
// starts with the field path being read (e.g. "edges.to[17]: ...").
class JsonReader {
 public:
  explicit JsonReader(std::string_view text) : begin_(text.data()), p_(text.data()),
                                               end_(text.data() + text.size()) {}
  void skip_ws() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) ++p_;
  }
  bool at_end() { skip_ws(); return p_ == end_; }
  // Consumes c (after whitespace) if it is next; returns whether it did.
  bool consume(char c) {
    skip_ws();
    if (p_ < end_ && *p_ == c) { ++p_; return true; }
    return false;
  }
  void expect(char c, const Path& path);
  bool peek_is(char c) { skip_ws(); return p_ < end_ && *p_ == c; }
  std::string read_string(const Path& path);
  double read_double(const Path& path);
  int64_t read_int(const Path& path);
  bool read_bool(const Path& path);
  // Skips any JSON value (used only to produce good messages; unknown keys are errors).
  [[noreturn]] void fail(const Path& path, const std::string& what) const;
  size_t offset() const { return static_cast<size_t>(p_ - begin_); }

  // Reads "[v, v, ...]" calling each(index) with the cursor at each element.
  template <class F>
  void read_array(const Path& path, F&& each) {
    expect('[', path);
    if (consume(']')) return;
    size_t i = 0;
    do {
      each(i++);
    } while (consume(','));
    expect(']', path);
  }

 private:
  // Scans a JSON number; returns [start, stop) and whether it had a fraction/exponent.
  void scan_number(const Path& path, const char*& start, bool& is_integer);
  const char* begin_;
  const char* p_;
  const char* end_;
};

// Input text as quoted in an error message: bytes outside printable ASCII as \xNN
// (a message must be valid UTF-8 whatever the input) and at most 40 bytes, then
// "... (N bytes)" (a megabyte-long number must not be echoed whole).
std::string quote_input(std::string_view text);

// Appends text for numbers: integers exactly, doubles in the shortest form that
// reads back to the same value.
void append_int(std::string& out, int64_t v);
void append_double(std::string& out, double v);

}  // namespace phasic
