#include "runtime/kernel/kernel.h"

#include <memory>

#include "graph/graph.h"
#include "graph/op_def.h"
#include "gtest/gtest.h"
#include "tests/util/test_util.h"

namespace sluice {
namespace {

using test::StatusHas;

// Reads an attribute its op does not declare: a kernel bug that must not run with a made-up
// default.
class ReadsUndeclaredAttrOp : public OpKernel {
 public:
  explicit ReadsUndeclaredAttrOp(const Node& node)
      : OpKernel(node), declared_(Attr<bool>("flag")), undeclared_(Attr<int64_t>("window")) {}
  absl::Status Compute(OpKernelContext*) override { return absl::OkStatus(); }

 private:
  bool declared_;
  int64_t undeclared_;
};

class ReadsDeclaredAttrOp : public OpKernel {
 public:
  explicit ReadsDeclaredAttrOp(const Node& node) : OpKernel(node), flag_(Attr<bool>("flag")) {}
  absl::Status Compute(OpKernelContext*) override { return absl::OkStatus(); }
  bool flag() const { return flag_; }

 private:
  bool flag_;
};

TEST(KernelTest, AKernelThatCannotReadAnAttributeIsRefusedNamingNodeAndAttribute) {
  OpRegistry ops;
  ASSERT_TRUE(ops.Register(OpDefBuilder("Bad").Attr("flag: bool = true")).ok());
  ASSERT_TRUE(ops.Register(OpDefBuilder("Good").Attr("flag: bool = true")).ok());
  KernelRegistry kernels;
  ASSERT_TRUE(
      kernels.Register("Bad", kDeviceCpu, DType::kInvalid, MakeKernel<ReadsUndeclaredAttrOp>).ok());
  ASSERT_TRUE(
      kernels.Register("Good", kDeviceCpu, DType::kInvalid, MakeKernel<ReadsDeclaredAttrOp>).ok());
  Graph g(&ops);
  NodeSpec bad{.name = "bad", .op = "Bad"};
  NodeSpec good{.name = "good", .op = "Good"};
  absl::StatusOr<Node*> bad_node = g.AddNode(bad);
  absl::StatusOr<Node*> good_node = g.AddNode(good);
  ASSERT_TRUE(bad_node.ok() && good_node.ok());

  EXPECT_TRUE(StatusHas(kernels.CreateKernel(**bad_node, kDeviceCpu).status(),
                        absl::StatusCode::kInvalidArgument,
                        "node 'bad' (Bad): kernel cannot read its attribute 'window'"));
  absl::StatusOr<std::unique_ptr<OpKernel>> k = kernels.CreateKernel(**good_node, kDeviceCpu);
  ASSERT_TRUE(k.ok()) << k.status();
  EXPECT_TRUE(static_cast<ReadsDeclaredAttrOp*>(k->get())->flag());  // The OpDef's default.
}

}  // namespace
}  // namespace sluice
