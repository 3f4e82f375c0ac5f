#include "core/crc32c.h"

#include <cstdint>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace sluice {
namespace {

uint32_t Crc(const std::string& s) { return Crc32c(s.data(), s.size()); }

// Reference: one bit at a time, straight from the definition.
uint32_t BitwiseCrc(const std::vector<uint8_t>& data) {
  uint32_t c = 0xFFFFFFFFu;
  for (uint8_t b : data) {
    c ^= b;
    for (int i = 0; i < 8; ++i) c = (c >> 1) ^ ((c & 1) ? 0x82F63B78u : 0);
  }
  return ~c;
}

TEST(Crc32cTest, KnownVectors) {
  // The check value of CRC-32C (RFC 3720 and the CRC catalogue).
  EXPECT_EQ(Crc("123456789"), 0xE3069283u);
  EXPECT_EQ(Crc(""), 0u);
  EXPECT_EQ(Crc("a"), 0xC1D04330u);
  // RFC 3720 appendix B.4: 32 bytes of zeros, of 0xFF, ascending and descending.
  std::vector<uint8_t> zeros(32, 0), ones(32, 0xFF), up(32), down(32);
  for (int i = 0; i < 32; ++i) {
    up[i] = static_cast<uint8_t>(i);
    down[i] = static_cast<uint8_t>(31 - i);
  }
  EXPECT_EQ(Crc32c(zeros.data(), 32), 0x8A9136AAu);
  EXPECT_EQ(Crc32c(ones.data(), 32), 0x62A8AB43u);
  EXPECT_EQ(Crc32c(up.data(), 32), 0x46DD794Eu);
  EXPECT_EQ(Crc32c(down.data(), 32), 0x113FDB5Cu);
}

TEST(Crc32cTest, MatchesBitwiseReferenceAtEveryLengthAndAlignment) {
  std::vector<uint8_t> data(300);
  uint32_t x = 12345;
  for (uint8_t& b : data) {
    x = x * 1103515245u + 12345u;
    b = static_cast<uint8_t>(x >> 16);
  }
  for (size_t offset = 0; offset < 8; ++offset) {
    for (size_t len = 0; len + offset <= 80; ++len) {
      std::vector<uint8_t> part(data.begin() + offset, data.begin() + offset + len);
      ASSERT_EQ(Crc32c(data.data() + offset, len), BitwiseCrc(part))
          << "offset " << offset << " len " << len;
    }
  }
}

TEST(Crc32cTest, ExtendEqualsWholeMessage) {
  const std::string msg = "The quick brown fox jumps over the lazy dog, twice over.";
  for (size_t cut = 0; cut <= msg.size(); ++cut) {
    uint32_t c = Crc32cExtend(0, msg.data(), cut);
    c = Crc32cExtend(c, msg.data() + cut, msg.size() - cut);
    ASSERT_EQ(c, Crc(msg)) << "cut at " << cut;
  }
}

TEST(Crc32cTest, DetectsEverySingleBitFlip) {
  std::string msg(64, 'x');
  const uint32_t good = Crc(msg);
  for (size_t i = 0; i < msg.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string bad = msg;
      bad[i] = static_cast<char>(bad[i] ^ (1 << bit));
      ASSERT_NE(Crc(bad), good);
    }
  }
}

}  // namespace
}  // namespace sluice
