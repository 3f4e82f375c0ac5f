#include "runtime/session/checkpoint.h"

#include <dirent.h>
#include <sys/stat.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "core/crc32c.h"
#include "gtest/gtest.h"
#include "ops/all_ops.h"
#include "runtime/session/session.h"
#include "tests/util/test_util.h"

namespace sluice {
namespace {

using test::StatusHas;
using test::TensorEq;

std::string TempDir(const std::string& name) {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string dir = std::string(base ? base : "/tmp") + "/checkpoint_test_" + name;
  ::mkdir(dir.c_str(), 0755);
  return dir;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
}

std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = ::opendir(dir.c_str());
  while (dirent* e = d ? ::readdir(d) : nullptr) {
    if (e->d_name[0] != '.') names.push_back(e->d_name);
  }
  if (d) ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

// Values with awkward bit patterns: a bit-exact round trip must keep them all.
Tensor AwkwardFloats() {
  Tensor t(DType::kFloat32, TensorShape({2, 3}));
  float* p = t.data<float>();
  p[0] = -0.0f;
  p[1] = std::numeric_limits<float>::denorm_min();
  p[2] = std::numeric_limits<float>::infinity();
  uint32_t nan_bits = 0x7FC01234u;  // A NaN with a payload.
  std::memcpy(&p[3], &nan_bits, 4);
  p[4] = 1.0f / 3.0f;
  p[5] = -123456.789f;
  return t;
}

// A graph with variables of every dtype, an initializer and a "scramble" op that changes them.
struct Model {
  Scope s = ops::NewRootScope();
  std::vector<Output> init, scramble;
  std::shared_ptr<const Graph> graph;

  explicit Model(DType w_dtype = DType::kFloat32, TensorShape w_shape = TensorShape({2, 3}),
                 bool with_extra = false) {
    Output w = ops::Variable(s.WithOpName("w"), w_shape, w_dtype);
    Output b = ops::Variable(s.WithOpName("layer/b"), TensorShape({3}), DType::kFloat64);
    Output step = ops::Variable(s.WithOpName("step"), TensorShape({}), DType::kInt64);
    Output flags = ops::Variable(s.WithOpName("flags"), TensorShape({2}), DType::kBool);
    if (w_dtype == DType::kFloat32 && w_shape == TensorShape({2, 3})) {
      init.push_back(ops::Assign(s, w, AwkwardFloats()));
      scramble.push_back(ops::Assign(s, w, ops::Fill(s, {2, 3}, 7.0f)));
    }
    init.push_back(ops::Assign(s, b, Tensor::FromVector<double>({M_PI, -1e-300, 1e300})));
    init.push_back(ops::Assign(s, step, Tensor::Scalar<int64_t>(int64_t{1} << 40)));
    init.push_back(ops::Assign(s, flags, Tensor::FromVector<bool>({true, false})));
    scramble.push_back(ops::Assign(s, b, Tensor::FromVector<double>({0, 0, 0})));
    scramble.push_back(ops::AssignAdd(s, step, Tensor::Scalar<int64_t>(1)));
    scramble.push_back(ops::Assign(s, flags, Tensor::FromVector<bool>({false, true})));
    if (with_extra) {
      Output extra = ops::Variable(s.WithOpName("extra"), TensorShape({1}), DType::kFloat32);
      init.push_back(ops::Assign(s, extra, Tensor::FromVector<float>({1})));
    }
    graph = *s.Finalize();
  }
  std::unique_ptr<Session> NewSession() { return *Session::Create(graph); }
};

std::vector<Tensor> ReadVars(Session& session, const std::vector<std::string>& names) {
  std::vector<Tensor> out;
  absl::Status st = session.Run({}, names, {}, &out);
  EXPECT_TRUE(st.ok()) << st;
  return out;
}

const std::vector<std::string> kAll = {"w", "layer/b", "step", "flags"};

TEST(CheckpointTest, RoundTripIsBitExact) {
  const std::string dir = TempDir("round_trip");
  const std::string path = dir + "/model.ckpt";
  Model m;
  auto session = m.NewSession();
  ASSERT_TRUE(session->Run({}, {}, nullptr, m.init).ok());
  const std::vector<Tensor> saved = ReadVars(*session, kAll);
  ASSERT_TRUE(SaveCheckpoint(*session, path).ok());

  ASSERT_TRUE(session->Run({}, {}, nullptr, m.scramble).ok());
  EXPECT_FALSE(ReadVars(*session, {"step"})[0].BitwiseEquals(saved[2]));
  ASSERT_TRUE(RestoreCheckpoint(*session, path).ok());
  std::vector<Tensor> restored = ReadVars(*session, kAll);
  for (size_t i = 0; i < kAll.size(); ++i) EXPECT_TRUE(TensorEq(restored[i], saved[i])) << kAll[i];

  // Into a fresh session whose variables were never initialised.
  auto fresh = m.NewSession();
  ASSERT_TRUE(RestoreCheckpoint(*fresh, path).ok());
  restored = ReadVars(*fresh, kAll);
  for (size_t i = 0; i < kAll.size(); ++i) EXPECT_TRUE(TensorEq(restored[i], saved[i])) << kAll[i];

  // Saving the same values again writes the same bytes; no temporary file is left behind.
  const std::string again = dir + "/again.ckpt";
  ASSERT_TRUE(SaveCheckpoint(*fresh, again).ok());
  EXPECT_EQ(ReadFile(path), ReadFile(again));
  EXPECT_EQ(ListDir(dir), (std::vector<std::string>{"again.ckpt", "model.ckpt"}));

  auto entries = ReadCheckpoint(path);
  ASSERT_TRUE(entries.ok()) << entries.status();
  std::vector<std::string> names;
  for (const auto& [name, t] : *entries) names.push_back(name);
  EXPECT_EQ(names, (std::vector<std::string>{"flags", "layer/b", "step", "w"}));  // Sorted.
}

TEST(CheckpointTest, SavingReplacesAnExistingFile) {
  const std::string path = TempDir("replace") + "/model.ckpt";
  WriteFile(path, "old contents");
  Model m;
  auto session = m.NewSession();
  ASSERT_TRUE(session->Run({}, {}, nullptr, m.init).ok());
  ASSERT_TRUE(SaveCheckpoint(*session, path).ok());
  EXPECT_TRUE(ReadCheckpoint(path).ok());
}

TEST(CheckpointTest, NamedSubset) {
  const std::string path = TempDir("subset") + "/subset.ckpt";
  Model m;
  auto session = m.NewSession();
  ASSERT_TRUE(session->Run({}, {}, nullptr, m.init).ok());
  ASSERT_TRUE(SaveCheckpoint(*session, path, {"step", "w"}).ok());
  auto entries = ReadCheckpoint(path);
  ASSERT_TRUE(entries.ok());
  ASSERT_EQ(entries->size(), 2u);
  EXPECT_EQ((*entries)[0].first, "step");
  EXPECT_EQ((*entries)[1].first, "w");

  const std::vector<Tensor> saved = ReadVars(*session, kAll);
  ASSERT_TRUE(session->Run({}, {}, nullptr, m.scramble).ok());
  const std::vector<Tensor> scrambled = ReadVars(*session, kAll);
  ASSERT_TRUE(RestoreCheckpoint(*session, path, {"w"}).ok());
  std::vector<Tensor> now = ReadVars(*session, kAll);
  EXPECT_TRUE(TensorEq(now[0], saved[0]));      // w restored
  EXPECT_TRUE(TensorEq(now[2], scrambled[2]));  // step untouched: not asked for
  // Restoring everything needs every graph variable in the file.
  EXPECT_TRUE(StatusHas(RestoreCheckpoint(*session, path), absl::StatusCode::kNotFound,
                        "the checkpoint has no variable 'flags'"));
}

TEST(CheckpointTest, SaveErrors) {
  const std::string dir = TempDir("save_errors");
  Model m;
  auto session = m.NewSession();
  EXPECT_TRUE(StatusHas(SaveCheckpoint(*session, dir + "/a.ckpt"),
                        absl::StatusCode::kFailedPrecondition,
                        "variable 'flags' is not initialized; nothing was saved"));
  ASSERT_TRUE(session->Run({}, {}, nullptr, m.init).ok());
  EXPECT_TRUE(StatusHas(SaveCheckpoint(*session, dir + "/a.ckpt", {"nope"}),
                        absl::StatusCode::kNotFound, "no variable 'nope' in the graph"));
  EXPECT_TRUE(StatusHas(SaveCheckpoint(*session, dir + "/missing_dir/a.ckpt"),
                        absl::StatusCode::kInternal, "cannot create checkpoint file"));
  EXPECT_TRUE(ListDir(dir).empty());
}

// A valid checkpoint and a session whose variables hold other values (the scrambled ones).
struct Damaged : public ::testing::Test {
  void SetUp() override {
    path = TempDir("damaged") + "/good.ckpt";
    auto saver = m.NewSession();
    ASSERT_TRUE(saver->Run({}, {}, nullptr, m.init).ok());
    ASSERT_TRUE(SaveCheckpoint(*saver, path).ok());
    good = ReadFile(path);
    session = m.NewSession();
    ASSERT_TRUE(session->Run({}, {}, nullptr, m.init).ok());
    ASSERT_TRUE(session->Run({}, {}, nullptr, m.scramble).ok());
    before = ReadVars(*session, kAll);
  }
  // Restores `data` and expects `code` with `message`, and every variable unchanged.
  void ExpectRejected(const std::string& data, absl::StatusCode code, const std::string& message) {
    const std::string bad = path + ".bad";
    WriteFile(bad, data);
    EXPECT_TRUE(StatusHas(RestoreCheckpoint(*session, bad), code, message));
    std::vector<Tensor> after = ReadVars(*session, kAll);
    for (size_t i = 0; i < kAll.size(); ++i) EXPECT_TRUE(TensorEq(after[i], before[i])) << kAll[i];
  }
  // `data` with its CRC recomputed, so only the layout checks can catch what was changed.
  static std::string Resealed(std::string data) {
    const uint32_t crc = Crc32c(data.data(), data.size() - 4);
    std::memcpy(&data[data.size() - 4], &crc, 4);
    return data;
  }

  Model m;
  std::string path, good;
  std::unique_ptr<Session> session;
  std::vector<Tensor> before;
};

TEST_F(Damaged, TruncatedFilesAreRejected) {
  for (size_t len : {size_t{0}, size_t{7}, size_t{27}, size_t{40}, good.size() / 2, good.size() - 5,
                     good.size() - 1}) {
    SCOPED_TRACE(len);
    ExpectRejected(good.substr(0, len), absl::StatusCode::kDataLoss,
                   len < 28 ? "truncated" : "is truncated: its header says");
  }
  ExpectRejected(good + "x", absl::StatusCode::kDataLoss, "is too long");
}

TEST_F(Damaged, CorruptedBytesAreRejected) {
  // Every single-bit flip past the header's fixed fields fails the checksum.
  for (size_t pos = 24; pos < good.size(); pos += 7) {
    SCOPED_TRACE(pos);
    std::string bad = good;
    bad[pos] = static_cast<char>(bad[pos] ^ 0x10);
    ExpectRejected(bad, absl::StatusCode::kDataLoss, "is corrupted: checksum mismatch");
  }
  std::string bad_magic = good;
  bad_magic[0] = 'X';
  ExpectRejected(bad_magic, absl::StatusCode::kDataLoss, "is not a Sluice checkpoint");
  std::string bad_version = good;
  bad_version[8] = 9;
  ExpectRejected(bad_version, absl::StatusCode::kDataLoss, "has format version 9");
  std::string bad_count = good;
  bad_count[12] ^= 1;
  ExpectRejected(bad_count, absl::StatusCode::kDataLoss, "checksum mismatch");
}

TEST_F(Damaged, MalformedLayoutIsRejectedEvenWithAValidChecksum) {
  // The first entry ("flags", bool [2]) starts at byte 24: name length, name, dtype, rank, dims,
  // data length, data.
  std::string bad = good;
  bad[24 + 4 + 5] = 42;  // dtype
  ExpectRejected(Resealed(bad), absl::StatusCode::kDataLoss, "has unknown dtype 42");
  bad = good;
  bad[24 + 4 + 5 + 4 + 4] = 3;  // dims[0] = 3: the data length no longer matches
  ExpectRejected(Resealed(bad), absl::StatusCode::kDataLoss, "data bytes for its shape");
  bad = good;
  bad[24 + 4 + 5 + 4 + 4 + 8 + 8] = 2;  // A bool that is neither 0 nor 1.
  ExpectRejected(Resealed(bad), absl::StatusCode::kDataLoss, "has a bool that is not 0 or 1");
  bad = good;
  bad[12] = 5;  // Five entries announced, four present.
  ExpectRejected(Resealed(bad), absl::StatusCode::kDataLoss, "entry 4 is cut short");
  bad = good;
  bad[27] = 0x40;  // A name length running past the end of the file.
  ExpectRejected(Resealed(bad), absl::StatusCode::kDataLoss, "bad name length");
}

TEST_F(Damaged, MismatchedGraphsAreRejected) {
  // Checked with other graphs: restoring must not touch their variables either.
  struct Case {
    Model model;
    absl::StatusCode code;
    std::string message;
  };
  std::vector<std::unique_ptr<Case>> cases;
  cases.push_back(
      std::make_unique<Case>(Case{Model(DType::kFloat64), absl::StatusCode::kInvalidArgument,
                                  "variable 'w' is float64 in the graph but float32 "
                                  "in the checkpoint"}));
  cases.push_back(std::make_unique<Case>(
      Case{Model(DType::kFloat32, TensorShape({3, 2})), absl::StatusCode::kInvalidArgument,
           "variable 'w' has shape [3,2] in the graph but [2,3] in the checkpoint"}));
  cases.push_back(std::make_unique<Case>(Case{Model(DType::kFloat32, TensorShape({2, 3}), true),
                                              absl::StatusCode::kNotFound,
                                              "the checkpoint has no variable 'extra'"}));
  for (const auto& c : cases) {
    auto s = c->model.NewSession();
    ASSERT_TRUE(s->Run({}, {}, nullptr, c->model.init).ok());
    const std::vector<std::string> names = {"layer/b", "step", "flags"};
    std::vector<Tensor> prior = ReadVars(*s, names);
    EXPECT_TRUE(StatusHas(RestoreCheckpoint(*s, path), c->code, c->message));
    std::vector<Tensor> after = ReadVars(*s, names);
    for (size_t i = 0; i < names.size(); ++i) EXPECT_TRUE(TensorEq(after[i], prior[i]));
  }
  // A checkpoint variable the graph lacks.
  Scope small = ops::NewRootScope();
  ops::Variable(small.WithOpName("w"), TensorShape({2, 3}), DType::kFloat32);
  auto small_session = *Session::Create(*small.Finalize());
  EXPECT_TRUE(StatusHas(RestoreCheckpoint(*small_session, path), absl::StatusCode::kInvalidArgument,
                        "checkpoint variable 'flags' is not a variable of the graph"));
  EXPECT_TRUE(RestoreCheckpoint(*small_session, path, {"w"}).ok());  // A subset is fine.
  EXPECT_TRUE(StatusHas(RestoreCheckpoint(*session, path + ".missing"), absl::StatusCode::kNotFound,
                        "cannot open checkpoint"));
}

TEST(CheckpointTest, UnknownDeclaredShapeAcceptsAnyShape) {
  const std::string path = TempDir("unknown_shape") + "/v.ckpt";
  Scope s = ops::NewRootScope();
  Output v = ops::Variable(s.WithOpName("v"), TensorShape::UnknownRank(), DType::kInt32);
  Output init = ops::Assign(s, v, Tensor::FromVector<int32_t>({1, 2, 3, 4}, TensorShape({2, 2})));
  auto session = *Session::Create(*s.Finalize());
  ASSERT_TRUE(session->Run({}, {init}, nullptr).ok());
  ASSERT_TRUE(SaveCheckpoint(*session, path).ok());
  auto other = *Session::Create(*s.Finalize());
  ASSERT_TRUE(RestoreCheckpoint(*other, path).ok());
  EXPECT_TRUE(TensorEq(ReadVars(*other, {"v"})[0],
                       Tensor::FromVector<int32_t>({1, 2, 3, 4}, TensorShape({2, 2}))));
}

}  // namespace
}  // namespace sluice
