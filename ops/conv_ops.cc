// 2-D convolution and pooling on NHWC tensors, with their gradients.
//
// Conv2D is im2col + GEMM, as TensorFlow's CPU kernel (Eigen's SpatialConvolution) is: the
// patches of a group of images are copied into a [rows, kh*kw*in] matrix (rows = output
// positions) and multiplied by the filter seen as [kh*kw*in, out], an Eigen contraction on the
// device's thread pool. The input gradient is the same product with the filter transposed,
// scattered back over the patches (col2im); the filter gradient is patches^T x out_backprop.
// Images are taken in groups whose patch matrix stays under kMaxPatchElements, so memory is
// bounded whatever the batch. Pooling loops over windows; padding never counts (MaxPool ignores
// it, AvgPool divides by the number of real elements), as in TensorFlow.

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "core/status.h"
#include "graph/shape_inference.h"
#include "ops/kernel_util.h"
#include "ops/nn_ops.h"
#include "ops/op_builder.h"

namespace sluice {
namespace {

using Eigen::DenseIndex;

// At most this many patch elements are materialised at once (64 MiB of float32).
constexpr int64_t kMaxPatchElements = int64_t{16} << 20;

// Where every window of a convolution or pooling lies in its input.
struct WindowGeometry {
  int64_t batch = 0, in_h = 0, in_w = 0, depth = 0;
  int64_t k_h = 0, k_w = 0, stride_h = 1, stride_w = 1, dilation_h = 1, dilation_w = 1;
  int64_t out_h = 0, out_w = 0, pad_top = 0, pad_left = 0;
};

// The [1, h, w, 1] attribute `name` as {h, w}; the error says what was wrong.
absl::StatusOr<std::pair<int64_t, int64_t>> SpatialPair(const std::vector<int64_t>& v,
                                                        absl::string_view name) {
  if (v.size() != 4 || v[0] != 1 || v[3] != 1 || v[1] < 1 || v[2] < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        name,
        " must be [1, h, w, 1] with h, w >= 1 (NHWC: no stride or window over the batch "
        "or channels), got [",
        absl::StrJoin(v, ", "), "]"));
  }
  return std::make_pair(v[1], v[2]);
}

absl::StatusOr<int64_t> OutputSize(int64_t in, int64_t k, int64_t dilation, int64_t stride,
                                   bool same, int64_t* pad_before, absl::string_view what) {
  const int64_t effective = (k - 1) * dilation + 1;
  if (same) {
    const int64_t out = (in + stride - 1) / stride;
    *pad_before = std::max<int64_t>((out - 1) * stride + effective - in, 0) / 2;
    return out;
  }
  *pad_before = 0;
  if (in < effective) {
    return absl::InvalidArgumentError(absl::StrCat("the ", what, " window (", effective,
                                                   " with dilation) is larger than the input's ",
                                                   in, " (padding VALID)"));
  }
  return (in - effective) / stride + 1;
}

// Reads strides, dilations (when the op has them) and padding, and computes the geometry of
// input `in` under a window of k_h x k_w.
absl::StatusOr<WindowGeometry> Geometry(const TensorShape& in, int64_t k_h, int64_t k_w,
                                        const std::vector<int64_t>& strides,
                                        const std::vector<int64_t>& dilations,
                                        const std::string& padding) {
  if (in.rank() != 4) {
    return absl::InvalidArgumentError(
        absl::StrCat("input must be rank 4 (NHWC), got shape ", in.DebugString()));
  }
  if (padding != "SAME" && padding != "VALID") {
    return absl::InvalidArgumentError(
        absl::StrCat("padding must be \"SAME\" or \"VALID\", got \"", padding, "\""));
  }
  WindowGeometry g;
  g.batch = in.dim(0);
  g.in_h = in.dim(1);
  g.in_w = in.dim(2);
  g.depth = in.dim(3);
  g.k_h = k_h;
  g.k_w = k_w;
  SLUICE_ASSIGN_OR_RETURN(auto s, SpatialPair(strides, "strides"));
  SLUICE_ASSIGN_OR_RETURN(auto d, SpatialPair(dilations, "dilations"));
  g.stride_h = s.first;
  g.stride_w = s.second;
  g.dilation_h = d.first;
  g.dilation_w = d.second;
  const bool same = padding == "SAME";
  SLUICE_ASSIGN_OR_RETURN(
      g.out_h, OutputSize(g.in_h, k_h, g.dilation_h, g.stride_h, same, &g.pad_top, "height"));
  SLUICE_ASSIGN_OR_RETURN(
      g.out_w, OutputSize(g.in_w, k_w, g.dilation_w, g.stride_w, same, &g.pad_left, "width"));
  return g;
}

// Copies the patches of images [n0, n0 + count) into `patches` [count*out_h*out_w, kh*kw*depth]
// (zeros where a window hangs over the padding).
template <typename T>
void Im2Col(const WindowGeometry& g, const T* input, int64_t n0, int64_t count, T* patches) {
  const int64_t depth = g.depth;
  T* dst = patches;
  for (int64_t n = n0; n < n0 + count; ++n) {
    const T* image = input + n * g.in_h * g.in_w * depth;
    for (int64_t oh = 0; oh < g.out_h; ++oh) {
      for (int64_t ow = 0; ow < g.out_w; ++ow) {
        for (int64_t i = 0; i < g.k_h; ++i) {
          const int64_t ih = oh * g.stride_h - g.pad_top + i * g.dilation_h;
          for (int64_t j = 0; j < g.k_w; ++j, dst += depth) {
            const int64_t iw = ow * g.stride_w - g.pad_left + j * g.dilation_w;
            if (ih < 0 || ih >= g.in_h || iw < 0 || iw >= g.in_w) {
              std::fill(dst, dst + depth, T(0));
            } else {
              std::copy_n(image + (ih * g.in_w + iw) * depth, depth, dst);
            }
          }
        }
      }
    }
  }
}

// The reverse of Im2Col: adds each patch row back onto the input positions it came from.
template <typename T>
void Col2ImAdd(const WindowGeometry& g, const T* patches, int64_t n0, int64_t count, T* input) {
  const int64_t depth = g.depth;
  const T* src = patches;
  for (int64_t n = n0; n < n0 + count; ++n) {
    T* image = input + n * g.in_h * g.in_w * depth;
    for (int64_t oh = 0; oh < g.out_h; ++oh) {
      for (int64_t ow = 0; ow < g.out_w; ++ow) {
        for (int64_t i = 0; i < g.k_h; ++i) {
          const int64_t ih = oh * g.stride_h - g.pad_top + i * g.dilation_h;
          for (int64_t j = 0; j < g.k_w; ++j, src += depth) {
            const int64_t iw = ow * g.stride_w - g.pad_left + j * g.dilation_w;
            if (ih < 0 || ih >= g.in_h || iw < 0 || iw >= g.in_w) continue;
            T* d = image + (ih * g.in_w + iw) * depth;
            for (int64_t c = 0; c < depth; ++c) d[c] += src[c];
          }
        }
      }
    }
  }
}

// c = op(a) x op(b) for row-major matrices, on the device's pool; `accumulate` adds to c.
template <typename T>
void Gemm(const OpKernelContext& ctx, const T* a, int64_t a_rows, int64_t a_cols, bool trans_a,
          const T* b, int64_t b_rows, int64_t b_cols, bool trans_b, T* c, bool accumulate) {
  ConstTensorMapT<T, 2> am(a, a_rows, a_cols);
  ConstTensorMapT<T, 2> bm(b, b_rows, b_cols);
  const int64_t m = trans_a ? a_cols : a_rows;
  const int64_t n = trans_b ? b_rows : b_cols;
  const int64_t k = trans_a ? a_rows : a_cols;
  if (ctx.eigen_device().numThreads() <= 1) {
    // One thread: Eigen's matrix GEMM, faster than a tensor contraction here (as in MatMul).
    using Matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    Eigen::Map<const Matrix> a_mat(a, a_rows, a_cols);
    Eigen::Map<const Matrix> b_mat(b, b_rows, b_cols);
    Eigen::Map<Matrix> c_mat(c, m, n);
    auto product = [&](const auto& x, const auto& y) {
      if (accumulate) {
        c_mat.noalias() += x * y;
      } else {
        c_mat.noalias() = x * y;
      }
    };
    if (!trans_a && !trans_b) {
      product(a_mat, b_mat);
    } else if (trans_a && !trans_b) {
      product(a_mat.transpose(), b_mat);
    } else if (!trans_a && trans_b) {
      product(a_mat, b_mat.transpose());
    } else {
      product(a_mat.transpose(), b_mat.transpose());
    }
    return;
  }
  TensorMapT<T, 2> cm(c, m, n);
  const Eigen::array<Eigen::IndexPair<DenseIndex>, 1> dims = {
      Eigen::IndexPair<DenseIndex>(trans_a ? 0 : 1, trans_b ? 1 : 0)};
  if (accumulate) {
    EvalExpr(ctx, cm, cm + am.contract(bm, dims), m * n * k);
  } else {
    EvalExpr(ctx, cm, am.contract(bm, dims), m * n * k);
  }
}

// How many images go into one im2col group.
int64_t ImagesPerGroup(const WindowGeometry& g) {
  const int64_t per_image = std::max<int64_t>(g.out_h * g.out_w * g.k_h * g.k_w * g.depth, 1);
  return std::clamp<int64_t>(kMaxPatchElements / per_image, 1, std::max<int64_t>(g.batch, 1));
}

std::string ConvError(const Node& node, absl::string_view message) {
  return absl::StrCat(node.op(), ": ", message);
}

// Conv2D's filter is [kh, kw, in, out]; its input's depth must be `in`.
absl::StatusOr<WindowGeometry> ConvGeometry(const OpKernel& kernel, const TensorShape& input,
                                            const TensorShape& filter,
                                            const std::vector<int64_t>& strides,
                                            const std::vector<int64_t>& dilations,
                                            const std::string& padding) {
  if (filter.rank() != 4) {
    return absl::InvalidArgumentError(
        ConvError(kernel.node(), absl::StrCat("filter must be rank 4 [height, width, in_channels, "
                                              "out_channels], got shape ",
                                              filter.DebugString())));
  }
  absl::StatusOr<WindowGeometry> g =
      Geometry(input, filter.dim(0), filter.dim(1), strides, dilations, padding);
  if (!g.ok()) return absl::InvalidArgumentError(ConvError(kernel.node(), g.status().message()));
  if (g->depth != filter.dim(2)) {
    return absl::InvalidArgumentError(
        ConvError(kernel.node(), absl::StrCat("input depth ", g->depth,
                                              " differs from the filter's "
                                              "in_channels ",
                                              filter.dim(2), " (input ", input.DebugString(),
                                              ", filter ", filter.DebugString(), ")")));
  }
  return g;
}

class ConvKernelBase : public OpKernel {
 public:
  explicit ConvKernelBase(const Node& node)
      : OpKernel(node),
        strides_(Attr<std::vector<int64_t>>("strides")),
        dilations_(Attr<std::vector<int64_t>>("dilations")),
        padding_(Attr<std::string>("padding")) {
    const std::string format = Attr<std::string>("data_format");
    if (construction_status().ok() && format != "NHWC") {
      SetError(absl::StrCat("only data_format \"NHWC\" is supported, got \"", format, "\""));
    }
  }

 protected:
  void SetError(absl::string_view message) {
    error_ = absl::InvalidArgumentError(ConvError(node(), message));
  }
  absl::Status error_;
  const std::vector<int64_t> strides_, dilations_;
  const std::string padding_;
};

template <typename T>
class Conv2DOp : public ConvKernelBase {
 public:
  using ConvKernelBase::ConvKernelBase;
  absl::Status Compute(OpKernelContext* ctx) override {
    SLUICE_RETURN_IF_ERROR(error_);
    const Tensor& input = ctx->input(0);
    const Tensor& filter = ctx->input(1);
    SLUICE_ASSIGN_OR_RETURN(WindowGeometry g, ConvGeometry(*this, input.shape(), filter.shape(),
                                                           strides_, dilations_, padding_));
    const int64_t out_c = filter.dim(3);
    SLUICE_ASSIGN_OR_RETURN(
        Tensor * out, ctx->allocate_output(0, TensorShape({g.batch, g.out_h, g.out_w, out_c})));
    if (out->num_elements() == 0) return absl::OkStatus();
    const int64_t k = g.k_h * g.k_w * g.depth;
    const int64_t rows_per_image = g.out_h * g.out_w;
    if (k == 0) {
      out->flat<T>().setZero();
      return absl::OkStatus();
    }
    const int64_t group = ImagesPerGroup(g);
    std::vector<T> patches(group * rows_per_image * k);
    for (int64_t n0 = 0; n0 < g.batch; n0 += group) {
      const int64_t count = std::min(group, g.batch - n0);
      Im2Col(g, input.data<T>(), n0, count, patches.data());
      Gemm<T>(*ctx, patches.data(), count * rows_per_image, k, false, filter.data<T>(), k, out_c,
              false, out->data<T>() + n0 * rows_per_image * out_c, false);
    }
    return absl::OkStatus();
  }
  bool IsExpensive() const override { return true; }
};

// Conv2DBackpropInput(input_sizes, filter, out_backprop) -> d(loss)/d(input).
template <typename T>
class Conv2DBackpropInputOp : public ConvKernelBase {
 public:
  using ConvKernelBase::ConvKernelBase;
  absl::Status Compute(OpKernelContext* ctx) override {
    SLUICE_RETURN_IF_ERROR(error_);
    SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> sizes,
                            TensorToInt64s(ctx->input(0), "input_sizes"));
    const Tensor& filter = ctx->input(1);
    const Tensor& dy = ctx->input(2);
    const TensorShape input_shape{absl::Span<const int64_t>(sizes)};
    SLUICE_ASSIGN_OR_RETURN(WindowGeometry g, ConvGeometry(*this, input_shape, filter.shape(),
                                                           strides_, dilations_, padding_));
    const int64_t out_c = filter.dim(3);
    SLUICE_RETURN_IF_ERROR(CheckOutBackprop(dy, g, out_c));
    SLUICE_ASSIGN_OR_RETURN(Tensor * dx, ctx->allocate_output(0, input_shape));
    dx->flat<T>().setZero();
    const int64_t k = g.k_h * g.k_w * g.depth;
    const int64_t rows_per_image = g.out_h * g.out_w;
    if (dx->num_elements() == 0 || k == 0 || rows_per_image == 0) return absl::OkStatus();
    const int64_t group = ImagesPerGroup(g);
    std::vector<T> cols(group * rows_per_image * k);
    for (int64_t n0 = 0; n0 < g.batch; n0 += group) {
      const int64_t count = std::min(group, g.batch - n0);
      Gemm<T>(*ctx, dy.data<T>() + n0 * rows_per_image * out_c, count * rows_per_image, out_c,
              false, filter.data<T>(), k, out_c, true, cols.data(), false);
      Col2ImAdd(g, cols.data(), n0, count, dx->data<T>());
    }
    return absl::OkStatus();
  }
  bool IsExpensive() const override { return true; }

 private:
  absl::Status CheckOutBackprop(const Tensor& dy, const WindowGeometry& g, int64_t out_c) {
    const TensorShape want({g.batch, g.out_h, g.out_w, out_c});
    if (dy.shape() == want) return absl::OkStatus();
    return absl::InvalidArgumentError(
        ConvError(node(), absl::StrCat("out_backprop has shape ", dy.shape().DebugString(),
                                       ", the convolution's output is ", want.DebugString())));
  }
};

// Conv2DBackpropFilter(input, filter_sizes, out_backprop) -> d(loss)/d(filter).
template <typename T>
class Conv2DBackpropFilterOp : public ConvKernelBase {
 public:
  using ConvKernelBase::ConvKernelBase;
  absl::Status Compute(OpKernelContext* ctx) override {
    SLUICE_RETURN_IF_ERROR(error_);
    const Tensor& input = ctx->input(0);
    SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> sizes,
                            TensorToInt64s(ctx->input(1), "filter_sizes"));
    const Tensor& dy = ctx->input(2);
    const TensorShape filter_shape{absl::Span<const int64_t>(sizes)};
    SLUICE_ASSIGN_OR_RETURN(WindowGeometry g, ConvGeometry(*this, input.shape(), filter_shape,
                                                           strides_, dilations_, padding_));
    const int64_t out_c = filter_shape.dim(3);
    const TensorShape want({g.batch, g.out_h, g.out_w, out_c});
    if (dy.shape() != want) {
      return absl::InvalidArgumentError(
          ConvError(node(), absl::StrCat("out_backprop has shape ", dy.shape().DebugString(),
                                         ", the convolution's output is ", want.DebugString())));
    }
    SLUICE_ASSIGN_OR_RETURN(Tensor * dw, ctx->allocate_output(0, filter_shape));
    dw->flat<T>().setZero();
    const int64_t k = g.k_h * g.k_w * g.depth;
    const int64_t rows_per_image = g.out_h * g.out_w;
    if (dw->num_elements() == 0 || g.batch == 0 || rows_per_image == 0) return absl::OkStatus();
    const int64_t group = ImagesPerGroup(g);
    std::vector<T> patches(group * rows_per_image * k);
    for (int64_t n0 = 0; n0 < g.batch; n0 += group) {
      const int64_t count = std::min(group, g.batch - n0);
      Im2Col(g, input.data<T>(), n0, count, patches.data());
      Gemm<T>(*ctx, patches.data(), count * rows_per_image, k, true,
              dy.data<T>() + n0 * rows_per_image * out_c, count * rows_per_image, out_c, false,
              dw->data<T>(), true);
    }
    return absl::OkStatus();
  }
  bool IsExpensive() const override { return true; }
};

// ---------------------------------------------------------------------------------------------
// Pooling.

class PoolKernelBase : public OpKernel {
 public:
  explicit PoolKernelBase(const Node& node)
      : OpKernel(node),
        ksize_(Attr<std::vector<int64_t>>("ksize")),
        strides_(Attr<std::vector<int64_t>>("strides")),
        padding_(Attr<std::string>("padding")) {
    const std::string format = Attr<std::string>("data_format");
    if (construction_status().ok() && format != "NHWC") {
      error_ = absl::InvalidArgumentError(ConvError(
          node, absl::StrCat("only data_format \"NHWC\" is supported, got \"", format, "\"")));
    }
  }

 protected:
  absl::StatusOr<WindowGeometry> PoolGeometry(const TensorShape& input) const {
    SLUICE_RETURN_IF_ERROR(error_);
    absl::StatusOr<std::pair<int64_t, int64_t>> k = SpatialPair(ksize_, "ksize");
    absl::StatusOr<WindowGeometry> g =
        k.ok() ? Geometry(input, k->first, k->second, strides_, {1, 1, 1, 1}, padding_)
               : absl::StatusOr<WindowGeometry>(k.status());
    if (!g.ok()) return absl::InvalidArgumentError(ConvError(node(), g.status().message()));
    return g;
  }
  // Calls f(window_index, input_index) for every real input element of every window.
  template <typename F>
  static void ForEachWindowElement(const WindowGeometry& g, F&& f) {
    int64_t window = 0;
    for (int64_t n = 0; n < g.batch; ++n) {
      for (int64_t oh = 0; oh < g.out_h; ++oh) {
        const int64_t h0 = oh * g.stride_h - g.pad_top;
        const int64_t h_begin = std::max<int64_t>(h0, 0);
        const int64_t h_end = std::min(h0 + g.k_h, g.in_h);
        for (int64_t ow = 0; ow < g.out_w; ++ow, ++window) {
          const int64_t w0 = ow * g.stride_w - g.pad_left;
          const int64_t w_begin = std::max<int64_t>(w0, 0);
          const int64_t w_end = std::min(w0 + g.k_w, g.in_w);
          for (int64_t h = h_begin; h < h_end; ++h) {
            for (int64_t w = w_begin; w < w_end; ++w) {
              f(window, ((n * g.in_h + h) * g.in_w + w) * g.depth);
            }
          }
        }
      }
    }
  }
  absl::Status error_;
  const std::vector<int64_t> ksize_, strides_;
  const std::string padding_;
};

template <typename T, bool kMax>
class PoolOp : public PoolKernelBase {
 public:
  using PoolKernelBase::PoolKernelBase;
  absl::Status Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    SLUICE_ASSIGN_OR_RETURN(WindowGeometry g, PoolGeometry(x.shape()));
    SLUICE_ASSIGN_OR_RETURN(
        Tensor * y, ctx->allocate_output(0, TensorShape({g.batch, g.out_h, g.out_w, g.depth})));
    const int64_t d = g.depth;
    T* yp = y->data<T>();
    const T* xp = x.data<T>();
    std::fill(yp, yp + y->num_elements(), kMax ? std::numeric_limits<T>::lowest() : T(0));
    std::vector<int64_t> counts(kMax ? 0 : g.batch * g.out_h * g.out_w, 0);
    ForEachWindowElement(g, [&](int64_t window, int64_t at) {
      T* out = yp + window * d;
      const T* in = xp + at;
      if constexpr (kMax) {
        for (int64_t c = 0; c < d; ++c) out[c] = std::max(out[c], in[c]);
      } else {
        for (int64_t c = 0; c < d; ++c) out[c] += in[c];
        ++counts[window];
      }
    });
    if constexpr (!kMax) {
      for (size_t w = 0; w < counts.size(); ++w) {
        for (int64_t c = 0; c < d; ++c) yp[w * d + c] /= static_cast<T>(counts[w]);
      }
    }
    return absl::OkStatus();
  }
  bool IsExpensive() const override { return true; }
};

template <typename T>
using MaxPoolOp = PoolOp<T, true>;
template <typename T>
using AvgPoolOp = PoolOp<T, false>;

// MaxPoolGrad(orig_input, orig_output, grad): each window's gradient goes to the first element
// that holds its maximum.
template <typename T>
class MaxPoolGradOp : public PoolKernelBase {
 public:
  using PoolKernelBase::PoolKernelBase;
  absl::Status Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    const Tensor& y = ctx->input(1);
    const Tensor& dy = ctx->input(2);
    SLUICE_ASSIGN_OR_RETURN(WindowGeometry g, PoolGeometry(x.shape()));
    const TensorShape out_shape({g.batch, g.out_h, g.out_w, g.depth});
    if (y.shape() != out_shape || dy.shape() != out_shape) {
      return absl::InvalidArgumentError(
          ConvError(node(), absl::StrCat("orig_output ", y.shape().DebugString(), " and grad ",
                                         dy.shape().DebugString(),
                                         " must have the pooling's output "
                                         "shape ",
                                         out_shape.DebugString())));
    }
    SLUICE_ASSIGN_OR_RETURN(Tensor * dx, ctx->allocate_output(0, x.shape()));
    T* dxp = dx->data<T>();
    std::fill(dxp, dxp + dx->num_elements(), T(0));
    const int64_t d = g.depth;
    std::vector<bool> routed(dy.num_elements(), false);
    const T* xp = x.data<T>();
    const T* yp = y.data<T>();
    const T* gp = dy.data<T>();
    ForEachWindowElement(g, [&](int64_t window, int64_t at) {
      for (int64_t c = 0; c < d; ++c) {
        const int64_t o = window * d + c;
        if (!routed[o] && xp[at + c] == yp[o]) {
          routed[o] = true;
          dxp[at + c] += gp[o];
        }
      }
    });
    return absl::OkStatus();
  }
  bool IsExpensive() const override { return true; }
};

// AvgPoolGrad(orig_input_shape, grad): each window's gradient is shared equally by its real
// elements.
template <typename T>
class AvgPoolGradOp : public PoolKernelBase {
 public:
  using PoolKernelBase::PoolKernelBase;
  absl::Status Compute(OpKernelContext* ctx) override {
    SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> sizes,
                            TensorToInt64s(ctx->input(0), "orig_input_shape"));
    const TensorShape x_shape{absl::Span<const int64_t>(sizes)};
    const Tensor& dy = ctx->input(1);
    SLUICE_ASSIGN_OR_RETURN(WindowGeometry g, PoolGeometry(x_shape));
    const TensorShape out_shape({g.batch, g.out_h, g.out_w, g.depth});
    if (dy.shape() != out_shape) {
      return absl::InvalidArgumentError(
          ConvError(node(), absl::StrCat("grad has shape ", dy.shape().DebugString(),
                                         ", the pooling's output is ", out_shape.DebugString())));
    }
    SLUICE_ASSIGN_OR_RETURN(Tensor * dx, ctx->allocate_output(0, x_shape));
    T* dxp = dx->data<T>();
    std::fill(dxp, dxp + dx->num_elements(), T(0));
    std::vector<int64_t> counts(g.batch * g.out_h * g.out_w, 0);
    ForEachWindowElement(g, [&](int64_t window, int64_t) { ++counts[window]; });
    const int64_t d = g.depth;
    const T* gp = dy.data<T>();
    ForEachWindowElement(g, [&](int64_t window, int64_t at) {
      const T share = T(1) / static_cast<T>(counts[window]);
      for (int64_t c = 0; c < d; ++c) dxp[at + c] += gp[window * d + c] * share;
    });
    return absl::OkStatus();
  }
  bool IsExpensive() const override { return true; }
};

// ---------------------------------------------------------------------------------------------
// Shape functions and registration.

absl::Status ConvShape(InferenceContext* c) {
  const TensorShape& in = c->input_shape(0);
  const TensorShape& f = c->input_shape(1);
  if (in.unknown_rank() || f.unknown_rank()) return absl::OkStatus();
  if (f.rank() != 4) {
    return InferenceContext::Error(
        absl::StrCat("filter must be rank 4 [height, width, in_channels, out_channels], got shape ",
                     f.DebugString()));
  }
  if (in.rank() != 4) {
    return InferenceContext::Error(
        absl::StrCat("input must be rank 4 (NHWC), got shape ", in.DebugString()));
  }
  if (in.dim(3) != kUnknownDim && f.dim(2) != kUnknownDim && in.dim(3) != f.dim(2)) {
    return InferenceContext::Error(
        absl::StrCat("input depth ", in.dim(3), " differs from the filter's in_channels ", f.dim(2),
                     " (input ", in.DebugString(), ", filter ", f.DebugString(), ")"));
  }
  SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> strides,
                          c->GetAttr<std::vector<int64_t>>("strides"));
  SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> dilations,
                          c->GetAttr<std::vector<int64_t>>("dilations"));
  SLUICE_ASSIGN_OR_RETURN(std::string padding, c->GetAttr<std::string>("padding"));
  SLUICE_ASSIGN_OR_RETURN(std::string format, c->GetAttr<std::string>("data_format"));
  if (format != "NHWC") {
    return InferenceContext::Error(
        absl::StrCat("only data_format \"NHWC\" is supported, got \"", format, "\""));
  }
  TensorShape out({in.dim(0), kUnknownDim, kUnknownDim, f.dim(3)});
  if (in.dim(1) != kUnknownDim && in.dim(2) != kUnknownDim && f.dim(0) != kUnknownDim &&
      f.dim(1) != kUnknownDim) {
    TensorShape known({1, in.dim(1), in.dim(2), 1});
    absl::StatusOr<WindowGeometry> g =
        Geometry(known, f.dim(0), f.dim(1), strides, dilations, padding);
    if (!g.ok()) return InferenceContext::Error(std::string(g.status().message()));
    out = TensorShape({in.dim(0), g->out_h, g->out_w, f.dim(3)});
  }
  c->set_output(0, out);
  return absl::OkStatus();
}

absl::Status PoolShape(InferenceContext* c) {
  const TensorShape& in = c->input_shape(0);
  if (in.unknown_rank()) return absl::OkStatus();
  SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> ksize, c->GetAttr<std::vector<int64_t>>("ksize"));
  SLUICE_ASSIGN_OR_RETURN(std::vector<int64_t> strides,
                          c->GetAttr<std::vector<int64_t>>("strides"));
  SLUICE_ASSIGN_OR_RETURN(std::string padding, c->GetAttr<std::string>("padding"));
  SLUICE_ASSIGN_OR_RETURN(std::string format, c->GetAttr<std::string>("data_format"));
  if (format != "NHWC") {
    return InferenceContext::Error(
        absl::StrCat("only data_format \"NHWC\" is supported, got \"", format, "\""));
  }
  if (in.rank() != 4) {
    return InferenceContext::Error(
        absl::StrCat("input must be rank 4 (NHWC), got shape ", in.DebugString()));
  }
  absl::StatusOr<std::pair<int64_t, int64_t>> k = SpatialPair(ksize, "ksize");
  if (!k.ok()) return InferenceContext::Error(std::string(k.status().message()));
  TensorShape out({in.dim(0), kUnknownDim, kUnknownDim, in.dim(3)});
  if (in.dim(1) != kUnknownDim && in.dim(2) != kUnknownDim) {
    absl::StatusOr<WindowGeometry> g = Geometry(TensorShape({1, in.dim(1), in.dim(2), 1}), k->first,
                                                k->second, strides, {1, 1, 1, 1}, padding);
    if (!g.ok()) return InferenceContext::Error(std::string(g.status().message()));
    out = TensorShape({in.dim(0), g->out_h, g->out_w, in.dim(3)});
  }
  c->set_output(0, out);
  return absl::OkStatus();
}

OpDefBuilder ConvDef(const std::string& name) {
  return std::move(OpDefBuilder(name)
                       .Attr("T: {float32, float64}")
                       .Attr("strides: list(int)")
                       .Attr("padding: string")
                       .Attr("dilations: list(int) = [1, 1, 1, 1]")
                       .Attr("data_format: string = \"NHWC\""));
}

OpDefBuilder PoolDef(const std::string& name) {
  return std::move(OpDefBuilder(name)
                       .Attr("T: {float32, float64}")
                       .Attr("ksize: list(int)")
                       .Attr("strides: list(int)")
                       .Attr("padding: string")
                       .Attr("data_format: string = \"NHWC\""));
}

}  // namespace

namespace nn_internal {

absl::Status RegisterConvOps(OpRegistry* ops, KernelRegistry* kernels) {
  SLUICE_RETURN_IF_ERROR(ops->Register(
      ConvDef("Conv2D")
          .Input("input: T")
          .Input("filter: T")
          .Output("output: T")
          .Doc("2-D convolution (cross-correlation, as TensorFlow's): input [batch, height, "
               "width, in_channels], filter [height, width, in_channels, out_channels]; "
               "strides and dilations [1, h, w, 1]; padding \"SAME\" (output ceil(in / "
               "stride), the extra padding at the bottom and right) or \"VALID\".")
          .SetShapeFn(ConvShape)));
  SLUICE_RETURN_IF_ERROR((RegisterCpuKernels<Conv2DOp, float, double>(kernels, "Conv2D")));

  SLUICE_RETURN_IF_ERROR(ops->Register(
      ConvDef("Conv2DBackpropInput")
          .Input("input_sizes: Tshape")
          .Attr("Tshape: {int32, int64} = int32")
          .Input("filter: T")
          .Input("out_backprop: T")
          .Output("output: T")
          .Doc("The gradient of Conv2D with respect to its input, of shape input_sizes.")
          .SetShapeFn([](InferenceContext* c) { return OutputShapeFromInput(c, 0, 0); })));
  SLUICE_RETURN_IF_ERROR(
      (RegisterCpuKernels<Conv2DBackpropInputOp, float, double>(kernels, "Conv2DBackpropInput")));

  SLUICE_RETURN_IF_ERROR(ops->Register(
      ConvDef("Conv2DBackpropFilter")
          .Input("input: T")
          .Input("filter_sizes: Tshape")
          .Attr("Tshape: {int32, int64} = int32")
          .Input("out_backprop: T")
          .Output("output: T")
          .Doc("The gradient of Conv2D with respect to its filter, of shape filter_sizes.")
          .SetShapeFn([](InferenceContext* c) { return OutputShapeFromInput(c, 1, 0); })));
  SLUICE_RETURN_IF_ERROR(
      (RegisterCpuKernels<Conv2DBackpropFilterOp, float, double>(kernels, "Conv2DBackpropFilter")));

  SLUICE_RETURN_IF_ERROR(ops->Register(
      PoolDef("MaxPool")
          .Input("input: T")
          .Output("output: T")
          .Doc("The maximum of each ksize window, NHWC, windows every `strides`; padding never "
               "wins.")
          .SetShapeFn(PoolShape)));
  SLUICE_RETURN_IF_ERROR((RegisterCpuKernels<MaxPoolOp, float, double>(kernels, "MaxPool")));
  SLUICE_RETURN_IF_ERROR(
      ops->Register(PoolDef("AvgPool")
                        .Input("value: T")
                        .Output("output: T")
                        .Doc("The mean of each ksize window, NHWC; padding is not counted.")
                        .SetShapeFn(PoolShape)));
  SLUICE_RETURN_IF_ERROR((RegisterCpuKernels<AvgPoolOp, float, double>(kernels, "AvgPool")));

  SLUICE_RETURN_IF_ERROR(ops->Register(
      PoolDef("MaxPoolGrad")
          .Input("orig_input: T")
          .Input("orig_output: T")
          .Input("grad: T")
          .Output("output: T")
          .Doc("The gradient of MaxPool: each window's grad goes to the first element holding "
               "its maximum.")
          .SetShapeFn(UnchangedShape)));
  SLUICE_RETURN_IF_ERROR(
      (RegisterCpuKernels<MaxPoolGradOp, float, double>(kernels, "MaxPoolGrad")));
  SLUICE_RETURN_IF_ERROR(ops->Register(
      PoolDef("AvgPoolGrad")
          .Input("orig_input_shape: Tshape")
          .Attr("Tshape: {int32, int64} = int32")
          .Input("grad: T")
          .Output("output: T")
          .Doc("The gradient of AvgPool: each window's grad shared by its real elements.")
          .SetShapeFn([](InferenceContext* c) { return OutputShapeFromInput(c, 0, 0); })));
  return RegisterCpuKernels<AvgPoolGradOp, float, double>(kernels, "AvgPoolGrad");
}

}  // namespace nn_internal

namespace ops {

Output Conv2D(const Scope& scope, Input input, Input filter, const std::vector<int64_t>& strides,
              const std::string& padding, const std::vector<int64_t>& dilations,
              SourceLocation loc) {
  return BuildOp(scope, "Conv2D", {input, filter},
                 {{"strides", AttrValue(strides)},
                  {"padding", AttrValue(padding)},
                  {"dilations", AttrValue(dilations)}},
                 loc);
}
Output Conv2DBackpropInput(const Scope& scope, Input input_sizes, Input filter, Input out_backprop,
                           const Node& conv, SourceLocation loc) {
  return BuildOp(scope, "Conv2DBackpropInput", {input_sizes, filter, out_backprop},
                 {{"strides", conv.attrs().at("strides")},
                  {"padding", conv.attrs().at("padding")},
                  {"dilations", conv.attrs().at("dilations")}},
                 loc);
}
Output Conv2DBackpropFilter(const Scope& scope, Input input, Input filter_sizes, Input out_backprop,
                            const Node& conv, SourceLocation loc) {
  return BuildOp(scope, "Conv2DBackpropFilter", {input, filter_sizes, out_backprop},
                 {{"strides", conv.attrs().at("strides")},
                  {"padding", conv.attrs().at("padding")},
                  {"dilations", conv.attrs().at("dilations")}},
                 loc);
}
Output MaxPool(const Scope& scope, Input input, const std::vector<int64_t>& ksize,
               const std::vector<int64_t>& strides, const std::string& padding,
               SourceLocation loc) {
  return BuildOp(scope, "MaxPool", {input},
                 {{"ksize", AttrValue(ksize)},
                  {"strides", AttrValue(strides)},
                  {"padding", AttrValue(padding)}},
                 loc);
}
Output AvgPool(const Scope& scope, Input input, const std::vector<int64_t>& ksize,
               const std::vector<int64_t>& strides, const std::string& padding,
               SourceLocation loc) {
  return BuildOp(scope, "AvgPool", {input},
                 {{"ksize", AttrValue(ksize)},
                  {"strides", AttrValue(strides)},
                  {"padding", AttrValue(padding)}},
                 loc);
}
Output PoolGrad(const Scope& scope, absl::string_view op, const std::vector<Input>& inputs,
                const Node& pool, SourceLocation loc) {
  return BuildOp(scope, op, inputs,
                 {{"ksize", pool.attrs().at("ksize")},
                  {"strides", pool.attrs().at("strides")},
                  {"padding", pool.attrs().at("padding")}},
                 loc);
}

}  // namespace ops
}  // namespace sluice
