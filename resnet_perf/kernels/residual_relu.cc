// A residual block's tail as one op each way: ResidualRelu and ResidualReluGrad (resnet_perf.kernels).
//
// TensorFlow runs the tail of a residual block, relu(residual + shortcut), as AddV2 then Relu, and its
// gradient as AddN (the output's consumers' gradients) then ReluGrad: four passes over the block's widest
// tensor where two suffice, and on bfloat16 its Eigen kernels convert value by value (1.3-1.8x slower than
// one loop over the bits, Zen 5).  These kernels give the same bits as those four ops: the sum is rounded to
// the tensor's dtype before the ReLU (bfloat16: to nearest even, a NaN stays a NaN), and the gradient is
// the rounded sum times (output > 0), a signed zero where the output is not positive, as ReluGrad's product;
// -0 and NaN pass the ReLU as Relu passes them.
//
// Built by resnet_perf/kernels/build.py with -O3 -march=native -fno-trapping-math: the loops vectorize for the CPU
// they run on, AVX2 included (there a loop must stay free of branches).
#include <cstdint>
#include <cstring>

#include "tensorflow/core/framework/common_shape_fns.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/util/work_sharder.h"

namespace resnet_perf {
namespace {

using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;

// bfloat16 as its 16 bits: the upper half of a float32.
inline float bf16_to_float(uint16_t bits) {
  const uint32_t word = uint32_t(bits) << 16;
  float value;
  std::memcpy(&value, &word, sizeof value);
  return value;
}

inline uint16_t float_to_bf16(float value) {  // round to nearest even, as Eigen::bfloat16 does
  uint32_t word;
  std::memcpy(&word, &value, sizeof word);
  const uint32_t rounded = (word + 0x7fffu + ((word >> 16) & 1u)) >> 16;
  const uint32_t quiet_nan = (word >> 16) | 0x40u;  // a NaN keeps its sign and becomes quiet
  return uint16_t((word & 0x7fffffffu) > 0x7f800000u ? quiet_nan : rounded);
}

// How a dtype's values are stored and converted to and from float, the type the loops compute in.
struct Float32 {
  using Stored = float;
  static float load(Stored value) { return value; }
  static Stored store(float value) { return value; }
};
struct BFloat16 {
  using Stored = uint16_t;
  static float load(Stored value) { return bf16_to_float(value); }
  static Stored store(float value) { return float_to_bf16(value); }
};

template <typename T> struct StorageOf;
template <> struct StorageOf<float> { using type = Float32; };
template <> struct StorageOf<tensorflow::bfloat16> { using type = BFloat16; };

template <typename S> const typename S::Stored* values(const Tensor& tensor) {
  return reinterpret_cast<const typename S::Stored*>(tensor.tensor_data().data());
}
template <typename S> typename S::Stored* mutable_values(Tensor* tensor) {
  return reinterpret_cast<typename S::Stored*>(const_cast<char*>(tensor->tensor_data().data()));
}

// Runs body(begin, end) over [0, count) in contiguous shards on TensorFlow's intra-op threads.
template <typename Body> void in_shards(OpKernelContext* context, int64_t count, Body body) {
  const auto* workers = context->device()->tensorflow_cpu_worker_threads();
  constexpr int64_t kCyclesPerValue = 4;  // a few loads, an add, a compare, a store
  tensorflow::Shard(workers->num_threads, workers->workers, count, kCyclesPerValue, body);
}

template <typename T> class ResidualReluOp : public OpKernel {
 public:
  explicit ResidualReluOp(OpKernelConstruction* context) : OpKernel(context) {}

  void Compute(OpKernelContext* context) override {
    using S = typename StorageOf<T>::type;
    const Tensor& residual = context->input(0);
    const Tensor& shortcut = context->input(1);
    OP_REQUIRES(context, residual.shape() == shortcut.shape(),
                absl::InvalidArgumentError("ResidualRelu: residual " + residual.shape().DebugString() +
                                           " and shortcut " + shortcut.shape().DebugString() + " differ"));
    Tensor* output = nullptr;
    OP_REQUIRES_OK(context, context->forward_input_or_allocate_output({0, 1}, 0, residual.shape(), &output));
    const auto* a = values<S>(residual);
    const auto* b = values<S>(shortcut);
    auto* y = mutable_values<S>(output);
    in_shards(context, residual.NumElements(), [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const auto sum = S::store(S::load(a[i]) + S::load(b[i]));
        y[i] = S::load(sum) < 0.f ? S::store(0.f) : sum;  // Relu's max(x, 0): -0 and NaN pass as they are
      }
    });
  }
};

template <typename T> class ResidualReluGradOp : public OpKernel {
 public:
  explicit ResidualReluGradOp(OpKernelConstruction* context) : OpKernel(context) {}

  void Compute(OpKernelContext* context) override {
    using S = typename StorageOf<T>::type;
    tensorflow::OpInputList gradients;
    OP_REQUIRES_OK(context, context->input_list("gradients", &gradients));
    const Tensor& output = context->input(gradients.size());
    OP_REQUIRES(context, gradients.size() <= 2,
                absl::InvalidArgumentError("ResidualReluGrad: an output used by at most two ops"));
    for (int k = 0; k < gradients.size(); ++k) {
      OP_REQUIRES(context, gradients[k].shape() == output.shape(),
                  absl::InvalidArgumentError("ResidualReluGrad: gradient " + gradients[k].shape().DebugString() +
                                             " and output " + output.shape().DebugString() + " differ"));
    }
    Tensor* backprop = nullptr;
    OP_REQUIRES_OK(context, context->forward_input_or_allocate_output({0}, 0, output.shape(), &backprop));
    const auto* y = values<S>(output);
    auto* g = mutable_values<S>(backprop);
    const auto* first = values<S>(gradients[0]);
    const auto* second = gradients.size() == 2 ? values<S>(gradients[1]) : nullptr;
    // ReluGrad's product, gradient * (output > 0): -0 and NaN as it gives them
    in_shards(context, output.NumElements(), [&](int64_t begin, int64_t end) {
      if (second == nullptr) {
        for (int64_t i = begin; i < end; ++i) g[i] = S::store(S::load(first[i]) * (S::load(y[i]) > 0.f ? 1.f : 0.f));
        return;
      }
      for (int64_t i = begin; i < end; ++i) {
        const float sum = S::load(S::store(S::load(first[i]) + S::load(second[i])));  // AddN's rounding
        g[i] = S::store(sum * (S::load(y[i]) > 0.f ? 1.f : 0.f));
      }
    });
  }
};

}  // namespace

REGISTER_OP("ResidualRelu")
    .Input("residual: T")
    .Input("shortcut: T")
    .Output("output: T")
    .Attr("T: {float, bfloat16}")
    .SetShapeFn(tensorflow::shape_inference::UnchangedShape)
    .Doc("relu(residual + shortcut), the sum rounded to T first: AddV2 then Relu in one pass.");

REGISTER_OP("ResidualReluGrad")
    .Input("gradients: N * T")
    .Input("output: T")
    .Output("backprop: T")
    .Attr("N: int >= 1")  // 1 or 2
    .Attr("T: {float, bfloat16}")
    .SetShapeFn([](tensorflow::shape_inference::InferenceContext* context) {
      context->set_output(0, context->input(context->num_inputs() - 1));
      return absl::OkStatus();
    })
    .Doc("The gradient of ResidualRelu's output used by N (1 or 2) ops: AddN(gradients) then ReluGrad in one pass.");

#define RESNET_PERF_REGISTER(T)                                                                   \
  REGISTER_KERNEL_BUILDER(Name("ResidualRelu").Device(tensorflow::DEVICE_CPU).TypeConstraint<T>("T"), \
                          ResidualReluOp<T>);                                                     \
  REGISTER_KERNEL_BUILDER(                                                                        \
      Name("ResidualReluGrad").Device(tensorflow::DEVICE_CPU).TypeConstraint<T>("T"), ResidualReluGradOp<T>);
RESNET_PERF_REGISTER(float)
RESNET_PERF_REGISTER(tensorflow::bfloat16)

}  // namespace resnet_perf
