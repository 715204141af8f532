#include "json_io.hpp"

#include <charconv>
#include <cmath>
#include <stdexcept>
#include <system_error>

namespace phasic {

std::string quote_input(std::string_view text) {
  constexpr size_t kShown = 40;
  std::string out;
  for (size_t i = 0; i < text.size() && i < kShown; ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      static const char* hex = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  if (text.size() > kShown) out += "... (" + std::to_string(text.size()) + " bytes)";
  return out;
}

void JsonReader::fail(const Path& path, const std::string& what) const {
  std::string where = path.base.empty() ? std::string("JSON") : path.str();
  throw std::invalid_argument(where + ": " + what + " (at byte " + std::to_string(offset()) +
                              ")");
}

void JsonReader::expect(char c, const Path& path) {
  skip_ws();
  if (p_ >= end_) fail(path, std::string("expected '") + c + "' but the text ended");
  if (*p_ != c)
    fail(path, std::string("expected '") + c + "' but found '" + quote_input({p_, 1}) + "'");
  ++p_;
}

std::string JsonReader::read_string(const Path& path) {
  skip_ws();
  if (p_ >= end_ || *p_ != '"') fail(path, "expected a string");
  ++p_;
  std::string out;
  while (true) {
    if (p_ >= end_) fail(path, "unterminated string");
    char c = *p_++;
    if (c == '"') break;
    if (static_cast<unsigned char>(c) < 0x20) fail(path, "control character in string");
    if (c == '\\') {
      if (p_ >= end_) fail(path, "unterminated escape");
      char e = *p_++;
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          if (end_ - p_ < 4) fail(path, "bad \\u escape");
          unsigned code = 0;
          auto r = std::from_chars(p_, p_ + 4, code, 16);
          if (r.ptr != p_ + 4) fail(path, "bad \\u escape");
          p_ += 4;
          // Keys and format strings are ASCII; anything else is kept as '?'.
          out += code < 0x80 ? static_cast<char>(code) : '?';
          break;
        }
        default: fail(path, "bad escape '\\" + quote_input({&e, 1}) + "'");
      }
    } else {
      out += c;
    }
  }
  return out;
}

void JsonReader::scan_number(const Path& path, const char*& start, bool& is_integer) {
  skip_ws();
  start = p_;
  is_integer = true;
  const char* q = p_;
  if (q < end_ && *q == '-') ++q;
  if (q >= end_ || !(*q >= '0' && *q <= '9')) {
    if (q < end_ && (*q == 'N' || *q == 'I' || *q == 'n' || *q == 'i'))
      fail(path, "non-finite numbers (NaN, Infinity) are not allowed");
    if (q < end_ && *q == '"') fail(path, "expected a number, found a string");
    if (q < end_ && *q == 'n') fail(path, "expected a number, found null");
    fail(path, "expected a number");
  }
  if (*q == '0') {
    ++q;
  } else {
    while (q < end_ && *q >= '0' && *q <= '9') ++q;
  }
  if (q < end_ && *q == '.') {
    is_integer = false;
    ++q;
    if (q >= end_ || !(*q >= '0' && *q <= '9')) fail(path, "malformed number");
    while (q < end_ && *q >= '0' && *q <= '9') ++q;
  }
  if (q < end_ && (*q == 'e' || *q == 'E')) {
    is_integer = false;
    ++q;
    if (q < end_ && (*q == '+' || *q == '-')) ++q;
    if (q >= end_ || !(*q >= '0' && *q <= '9')) fail(path, "malformed number");
    while (q < end_ && *q >= '0' && *q <= '9') ++q;
  }
  p_ = q;
}

double JsonReader::read_double(const Path& path) {
  const char* start;
  bool is_int;
  scan_number(path, start, is_int);
  double v = 0;
  auto r = std::from_chars(start, p_, v);
  if (r.ptr != p_ || r.ec == std::errc::result_out_of_range || !std::isfinite(v)) {
    if (r.ec == std::errc::result_out_of_range) {
      // Underflow to a subnormal/zero is harmless; overflow is not finite.
      if (std::string_view(start, p_ - start).find_first_of("eE") != std::string_view::npos) {
        size_t pos = std::string_view(start, p_ - start).find_first_of("eE");
        if (start[pos + 1] == '-') return 0.0;
      }
    }
    fail(path, "number " + quote_input({start, static_cast<size_t>(p_ - start)}) +
                   " is not a finite double");
  }
  return v;
}

int64_t JsonReader::read_int(const Path& path) {
  const char* start;
  bool is_int;
  scan_number(path, start, is_int);
  if (!is_int)
    fail(path, "expected an integer, found " +
                   quote_input({start, static_cast<size_t>(p_ - start)}));
  int64_t v = 0;
  auto r = std::from_chars(start, p_, v);
  if (r.ec != std::errc() || r.ptr != p_)
    fail(path, "integer " + quote_input({start, static_cast<size_t>(p_ - start)}) +
                   " is out of range");
  return v;
}

bool JsonReader::read_bool(const Path& path) {
  skip_ws();
  if (end_ - p_ >= 4 && std::string_view(p_, 4) == "true") { p_ += 4; return true; }
  if (end_ - p_ >= 5 && std::string_view(p_, 5) == "false") { p_ += 5; return false; }
  fail(path, "expected true or false");
}

void append_int(std::string& out, int64_t v) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

void append_double(std::string& out, double v) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  std::string_view s(buf, r.ptr - buf);
  out.append(s);
  // Keep floats recognisable as floats ("1.0", not "1") for readers in other languages.
  if (s.find_first_of(".eEn") == std::string_view::npos) out.append(".0");
}

std::string Path::str() const {
  std::string s(base);
  if (i >= 0) s += "[" + std::to_string(i) + "]";
  if (j >= 0) s += "[" + std::to_string(j) + "]";
  return s;
}

}  // namespace phasic
