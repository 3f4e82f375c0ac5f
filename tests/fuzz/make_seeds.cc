// Writes the seed corpora of the fuzz targets: small valid inputs built with the DSL and the
// real encoders, so the fuzzers start past the parsers' front doors, plus a few edge cases.
// Deterministic (protos serialised deterministically), so a rerun rewrites the same files.
//
//   bazel run //tests/fuzz:make_seeds -- "$PWD/tests/fuzz/corpus"
//
// writes <dir>/<target>/<seed name> for each target of tests/fuzz/BUILD.bazel.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "core/tensor.h"
#include "core/tensor_proto.h"
#include "distributed/chunk_codec.h"
#include "distributed/protocol.h"
#include "distributed/protocol.pb.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "graph/graph_def.h"
#include "graph/partitioner.h"
#include "graph/placer.h"
#include "ops/all_ops.h"
#include "ops/optimizers.h"
#include "ops/variables.h"
#include "runtime/kernel/rendezvous.h"
#include "tests/fuzz/fuzz_input.h"

namespace sluice {
namespace {

constexpr char kW0[] = "/job:worker/task:0/device:cpu:0";
constexpr char kW1[] = "/job:worker/task:1/device:cpu:0";

using Corpus = std::map<std::string, std::string>;  // Seed name -> bytes.

// Map fields (NodeDef.attr) have no fixed order otherwise.
std::string Serialize(const google::protobuf::MessageLite& msg) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    msg.SerializeToCodedStream(&coded);
  }
  return out;
}

void Check(const absl::Status& s, const char* what) {
  if (s.ok()) return;
  std::fprintf(stderr, "make_seeds: %s: %s\n", what, s.ToString().c_str());
  std::exit(1);
}

template <typename T>
T Value(absl::StatusOr<T> v, const char* what) {
  Check(v.status(), what);
  return *std::move(v);
}

proto::GraphDef Def(const Scope& root) {
  proto::GraphDef def;
  ToGraphDef(*Value(root.Finalize(), "finalising a seed graph"), &def);
  return def;
}

// x[-1,4] -> softmax(x w + b).
proto::GraphDef MlpGraph() {
  Scope root = ops::NewRootScope();
  Output x = ops::Placeholder(root.WithOpName("x"), DType::kFloat32, TensorShape({-1, 4}));
  Output w = ops::Const(
      root.WithOpName("w"),
      Tensor::FromVector<float>({1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1}, TensorShape({4, 3})));
  Output b = ops::Const(root.WithOpName("b"), Tensor::FromVector<float>({0.5f, 0, -0.5f}));
  ops::Softmax(root.WithOpName("y"),
               ops::Add(root.WithOpName("logits"), ops::MatMul(root, x, w), b));
  return Def(root);
}

// A variable, its initialiser, a loss and a gradient-descent step (gradient and update ops).
proto::GraphDef TrainGraph() {
  Scope root = ops::NewRootScope();
  Output x = ops::Placeholder(root.WithOpName("x"), DType::kFloat32, TensorShape({-1, 2}));
  Output w = ops::VariableWithInit(
      root.WithOpName("w"),
      ops::Const(root, Tensor::FromVector<float>({1, 2}, TensorShape({2, 1}))));
  Output loss =
      ops::ReduceMean(root.WithOpName("loss"), ops::Square(root, ops::MatMul(root, x, w)), {0, 1});
  ops::GradientDescentOptimizer opt(0.1);
  Value(opt.Minimize(root.WithOpName("train"), loss, {w}), "building the train op");
  ops::GlobalVariablesInitializer(root.WithOpName("init"));
  return Def(root);
}

// Shape-manipulating ops, whose shape functions read constant inputs.
proto::GraphDef ArrayGraph() {
  Scope root = ops::NewRootScope();
  Output v = ops::Const(root.WithOpName("v"), Tensor::FromVector<float>({1, 2, 3, 4, 5, 6}));
  Output m = ops::Reshape(root.WithOpName("m"), v, Tensor::FromVector<int64_t>({2, 3}));
  Output t = ops::Transpose(root.WithOpName("t"), m, Tensor::FromVector<int32_t>({1, 0}));
  Output c = ops::Concat(root.WithOpName("c"), {t, t}, Tensor::Scalar<int32_t>(1));
  Output s = ops::Slice(root.WithOpName("s"), c, Tensor::FromVector<int64_t>({0, 1}),
                        Tensor::FromVector<int64_t>({2, -1}));
  Output f = ops::Fill(root.WithOpName("f"), Tensor::FromVector<int64_t>({2, 3}),
                       Tensor::Scalar<float>(2));
  Output i = ops::Cast(root.WithOpName("i"), ops::Mul(root, s, f), DType::kInt32);
  ops::Split(root.WithOpName("split"), Tensor::Scalar<int32_t>(1),
             ops::Cast(root, i, DType::kFloat64), 3);
  ops::Identity(root.WithOpName("after").WithControlDependencies({c, f}), v);
  return Def(root);
}

// c on task 1, y = -c on task 0: partitioned, a _Send/_Recv pair joins them.
proto::GraphDef TwoTaskGraph() {
  Scope root = ops::NewRootScope();
  Output c = ops::Const(root.WithOpName("c").WithDevice("/job:worker/task:1"),
                        Tensor::FromVector<float>({1, -2}));
  ops::Neg(root.WithOpName("y").WithDevice("/job:worker/task:0"), c);
  return Def(root);
}

struct Partitioned {
  std::map<std::string, proto::GraphDef> parts;  // By device.
};

Partitioned PartitionTwoTask() {
  RegisterAllOps();
  std::unique_ptr<Graph> graph = Value(GraphFromGraphDef(TwoTaskGraph()), "importing");
  Placement placement = Value(PlaceGraph(*graph, {kW0, kW1}), "placing");
  PartitionedGraph parts = Value(PartitionGraph(*graph, placement), "partitioning");
  Partitioned out;
  for (const GraphPartition& p : parts.partitions) ToGraphDef(*p.graph, &out.parts[p.device]);
  return out;
}

Corpus GraphDefSeeds() {
  Corpus c;
  c["mlp"] = Serialize(MlpGraph());
  c["train"] = Serialize(TrainGraph());
  c["array"] = Serialize(ArrayGraph());
  c["two_tasks"] = Serialize(TwoTaskGraph());
  for (const auto& [device, def] : PartitionTwoTask().parts) {
    c[absl::StrCat("partition_task", device == kW0 ? 0 : 1)] = Serialize(def);
  }
  c["empty"] = "";
  proto::GraphDef unknown;
  unknown.set_version(kGraphDefVersion);
  proto::NodeDef* n = unknown.add_node();
  n->set_name("n");
  n->set_op("NoSuchOp");
  n->add_input("missing:3");
  c["unknown_op"] = Serialize(unknown);
  return c;
}

Corpus TensorSeeds() {
  Corpus c;
  auto add = [&](const std::string& name, const Tensor& t) {
    proto::TensorProto p;
    TensorToProto(t, &p);
    c[name] = Serialize(p);
  };
  add("float_2x3", Tensor::FromVector<float>({1, 2, 3, 4, 5, 6}, TensorShape({2, 3})));
  add("double_scalar", Tensor::Scalar<double>(3.5));
  add("int32_vec", Tensor::FromVector<int32_t>({1, -1, 7, 0}));
  add("int64_empty", Value(Tensor::Allocate(DType::kInt64, TensorShape({0, 5})), "allocating"));
  add("bool_vec", Tensor::FromVector<bool>({true, false, true}));
  proto::TensorProto p;
  p.set_dtype(proto::DT_FLOAT32);
  p.mutable_shape()->set_unknown_rank(true);
  c["unknown_rank"] = Serialize(p);
  p.mutable_shape()->set_unknown_rank(false);
  p.mutable_shape()->add_dim(3);
  p.set_content(std::string(8, '\0'));  // 3 floats need 12 bytes.
  c["short_content"] = Serialize(p);
  p.set_dtype(proto::DT_BOOL);
  p.set_content(std::string("\x01\x02\x00", 3));  // Bytes other than 0 and 1.
  c["bad_bool"] = Serialize(p);
  return c;
}

// Each chunk message as chunk_codec_fuzz reads it: [split][u16 length][bytes].
std::vector<std::string> Chunks(const Tensor& t, int64_t chunk_bytes, const std::string& key,
                                int64_t step = 7) {
  ChunkEncoder enc(step, key, t, {.chunk_bytes = chunk_bytes});
  std::vector<std::string> out;
  grpc::ByteBuffer msg;
  while (enc.Next(&msg)) {
    std::vector<grpc::Slice> slices;
    Check(msg.Dump(&slices).ok() ? absl::OkStatus() : absl::InternalError("dump"), "dump");
    std::string bytes;
    for (const grpc::Slice& s : slices) {
      bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
    out.push_back(bytes);
  }
  return out;
}

std::string Abandon(const Tensor& t, int64_t chunk_bytes, const std::string& key) {
  ChunkEncoder enc(7, key, t, {.chunk_bytes = chunk_bytes});
  grpc::ByteBuffer msg;
  enc.Next(&msg);
  enc.Abandon(&msg);
  std::vector<grpc::Slice> slices;
  (void)msg.Dump(&slices);
  std::string bytes;
  for (const grpc::Slice& s : slices)
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return bytes;
}

Corpus ChunkSeeds() {
  Corpus c;
  const Tensor ramp = Tensor::FromVector<float>({0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  auto frames = [](const std::vector<std::string>& chunks, uint8_t split) {
    std::string out;
    for (const std::string& chunk : chunks) fuzz::AppendRecord(split, chunk, &out);
    return out;
  };
  c["one_chunk"] = frames(Chunks(ramp, 1 << 20, "a;b;x:0"), 0);
  c["four_chunks"] = frames(Chunks(ramp, 12, "a;b;x:0"), 0);
  c["four_chunks_split"] = frames(Chunks(ramp, 12, "a;b;x:0"), 7);
  c["zero_bytes"] = frames(Chunks(Tensor::FromVector<int64_t>({}), 16, "k"), 0);
  std::vector<std::string> two = Chunks(Tensor::FromVector<bool>({true, false}), 1, "first");
  for (const std::string& s : Chunks(Tensor::Scalar<double>(2.5), 3, "second", 8)) two.push_back(s);
  c["two_tensors"] = frames(two, 0);
  std::vector<std::string> truncated = Chunks(ramp, 12, "t");
  truncated.pop_back();
  c["truncated"] = frames(truncated, 0);
  std::vector<std::string> abandoned = {Abandon(ramp, 12, "gone")};
  abandoned.insert(abandoned.begin(), Chunks(ramp, 12, "gone")[0]);
  for (const std::string& s : Chunks(ramp, 40, "next")) abandoned.push_back(s);
  c["abandoned_then_next"] = frames(abandoned, 0);
  c["garbage"] = std::string("\x00\x05\x00\xff\xff\xff\xff\x01", 8);
  return c;
}

// Worker requests in worker_fuzz.cc's framing; `tag` as described there.
class Requests {
 public:
  Requests& Add(uint8_t tag, const google::protobuf::MessageLite& msg) {
    fuzz::AppendRecord(tag, Serialize(msg), &bytes_);
    return *this;
  }
  Requests& AddRaw(uint8_t tag, const std::string& raw) {
    fuzz::AppendRecord(tag, raw, &bytes_);
    return *this;
  }
  std::string bytes() const { return bytes_; }

 private:
  std::string bytes_;
};

proto::RunGraphRequest RunReq(int64_t step, const Tensor* feed = nullptr) {
  proto::RunGraphRequest run;
  run.set_protocol_version(kProtocolVersion);
  run.set_step_id(step);
  run.set_timeout_ms(200);
  if (feed != nullptr) {
    proto::NamedTensor* f = run.add_feeds();
    f->set_name("x:0");
    TensorToProto(*feed, f->mutable_tensor());
  }
  return run;
}

Corpus WorkerSeeds() {
  Corpus c;
  Scope root = ops::NewRootScope();
  Output x = ops::Placeholder(root.WithOpName("x"), DType::kFloat32, TensorShape({2}));
  ops::Neg(root.WithOpName("y"), x);
  proto::RegisterGraphRequest neg;
  neg.set_protocol_version(kProtocolVersion);
  *neg.mutable_partition() = Def(root);
  neg.add_feeds("x:0");
  neg.add_fetches("y:0");
  const Tensor feed = Tensor::FromVector<float>({1, -3});
  proto::HeartbeatRequest beat;
  beat.set_protocol_version(kProtocolVersion);
  beat.set_from("/job:master/task:0");
  proto::AbortStepRequest abort;
  abort.set_protocol_version(kProtocolVersion);
  abort.set_step_id(9);
  abort.set_reason("aborted by the seed");
  abort.set_lost_task("/job:worker/task:1");

  c["register_run_heartbeat"] =
      Requests().Add(0, neg).Add(1, RunReq(7, &feed)).Add(3, beat).bytes();
  c["run_abort_race"] =
      Requests().Add(0, neg).Add(1 | 0x40, RunReq(9, &feed)).Add(2, abort).Add(3, beat).bytes();
  proto::DeregisterGraphRequest dereg;
  dereg.set_protocol_version(kProtocolVersion);
  c["register_deregister_run"] =
      Requests().Add(0, neg).Add(5, dereg).Add(1, RunReq(3, &feed)).bytes();

  // Task 0's half of TwoTaskGraph: its _Recv gets c:0 from a data-plane push.
  Partitioned parts = PartitionTwoTask();
  proto::RegisterGraphRequest recv_part;
  recv_part.set_protocol_version(kProtocolVersion);
  *recv_part.mutable_partition() = parts.parts[kW0];
  recv_part.add_fetches("y:0");
  proto::PeerAddress* peer = recv_part.add_peers();
  peer->set_task_prefix("/job:worker/task:1");
  peer->set_control_address("127.0.0.1:1");
  peer->set_data_address("127.0.0.1:1");
  const std::string key = Rendezvous::CreateKey(11, kW1, kW0, "c:0");
  Requests pushed;
  pushed.Add(0, recv_part);
  for (const std::string& chunk : Chunks(Tensor::FromVector<float>({1, -2}), 4, key, 11)) {
    pushed.AddRaw(7, chunk);
  }
  c["push_then_recv"] = pushed.Add(1, RunReq(11)).bytes();
  c["recv_times_out"] = Requests().Add(0, recv_part).Add(1, RunReq(12)).bytes();
  // Both halves on this worker, one step: the _Send's receiver is another task, with no address.
  proto::RegisterGraphRequest send_part = recv_part;
  *send_part.mutable_partition() = parts.parts[kW1];
  send_part.clear_fetches();
  c["both_halves"] = Requests()
                         .Add(0, recv_part)
                         .Add(1 | 0x40, RunReq(13))
                         .Add(0, send_part)
                         .Add(1 | 0x40, RunReq(13))
                         .bytes();

  proto::EdgeControlMessage open;
  open.mutable_open()->set_protocol_version(kProtocolVersion);
  open.mutable_open()->set_edge("/job:worker/task:1->/job:worker/task:0");
  proto::EdgeControlMessage failed;
  failed.mutable_step_failed()->set_step_id(12);
  failed.mutable_step_failed()->set_code(0);
  failed.mutable_step_failed()->set_message("an OK status off the wire");
  c["edge_open_step_failed"] =
      Requests().Add(6, open).Add(0, recv_part).Add(1 | 0x40, RunReq(12)).Add(4, failed).bytes();
  beat.set_protocol_version(7);
  c["version_mismatch"] = Requests().Add(3 | 0x80, beat).bytes();
  return c;
}

Corpus MasterSeeds() {
  Corpus c;
  proto::CreateSessionRequest create;
  create.set_protocol_version(kProtocolVersion);
  *create.mutable_graph() = MlpGraph();
  proto::RunStepRequest run;
  run.set_protocol_version(kProtocolVersion);
  proto::NamedTensor* feed = run.add_feeds();
  feed->set_name("x:0");
  TensorToProto(Tensor::FromVector<float>({1, 2, 3, 4}, TensorShape({1, 4})),
                feed->mutable_tensor());
  run.add_fetches("y:0");
  proto::ListDevicesRequest list;
  list.set_protocol_version(kProtocolVersion);
  proto::CloseSessionRequest close;
  close.set_protocol_version(kProtocolVersion);
  c["create_run_close"] = Requests().Add(0, create).Add(3, run).Add(4, list).Add(2, close).bytes();

  proto::ExtendSessionRequest extend;
  extend.set_protocol_version(kProtocolVersion);
  proto::NodeDef* n = extend.mutable_graph()->add_node();
  n->set_name("z");
  n->set_op("Neg");
  n->add_input("logits:0");
  (*n->mutable_attr())["T"].set_type(proto::DT_FLOAT32);
  proto::RunStepRequest run_z = run;
  run_z.set_fetches(0, "z:0");
  c["create_extend_run"] = Requests().Add(0, create).Add(1, extend).Add(3, run_z).bytes();

  proto::CreateSessionRequest train;
  train.set_protocol_version(kProtocolVersion);
  *train.mutable_graph() = TrainGraph();
  proto::RunStepRequest step;
  step.set_protocol_version(kProtocolVersion);
  step.add_targets("init");
  c["train_init"] = Requests().Add(0, train).Add(3, step).bytes();

  proto::CreateSessionRequest two;
  two.set_protocol_version(kProtocolVersion);
  *two.mutable_graph() = TwoTaskGraph();
  proto::RunStepRequest fetch_y;
  fetch_y.set_protocol_version(kProtocolVersion);
  fetch_y.add_fetches("y");
  c["two_tasks"] = Requests().Add(0, two).Add(3, fetch_y).bytes();

  proto::CreateSessionRequest bad = create;
  bad.mutable_graph()->mutable_node(0)->set_op("NoSuchOp");
  c["bad_graph_then_list"] = Requests().Add(0, bad).Add(4, list).bytes();
  return c;
}

void Write(const std::filesystem::path& dir, const Corpus& corpus) {
  std::filesystem::create_directories(dir);
  for (const auto& [name, bytes] : corpus) {
    std::ofstream out(dir / name, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) {
      std::fprintf(stderr, "make_seeds: cannot write %s\n", (dir / name).c_str());
      std::exit(1);
    }
  }
  std::printf("%s: %zu seeds\n", dir.c_str(), corpus.size());
}

}  // namespace
}  // namespace sluice

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
    return 2;
  }
  const std::filesystem::path root(argv[1]);
  sluice::RegisterAllOps();
  sluice::Write(root / "graph_def", sluice::GraphDefSeeds());
  sluice::Write(root / "tensor_proto", sluice::TensorSeeds());
  sluice::Write(root / "chunk_codec", sluice::ChunkSeeds());
  sluice::Write(root / "worker", sluice::WorkerSeeds());
  sluice::Write(root / "master", sluice::MasterSeeds());
  return 0;
}
