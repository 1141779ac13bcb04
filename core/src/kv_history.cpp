#include "qvg/core/kv_history.h"

#include <ATen/ATen.h>

#include "qvg/core/error.h"

namespace qvg::core {

void LayerHistory::read_into(const at::Tensor& k_out, const at::Tensor& v_out,
                             const RopeAngles* rope) {
    const KVView view = read();
    if (view.empty()) return;
    QVG_CHECK(k_out.sizes() == view.k.sizes() && v_out.sizes() == view.v.sizes(),
              "history holds K/V {} but the destination is {}", fmt::join(view.k.sizes(), "x"),
              fmt::join(k_out.sizes(), "x"));
    if (rope != nullptr) {
        WanRope::apply_into(view.k, *rope, k_out);
    } else {
        k_out.copy_(view.k);
    }
    v_out.copy_(view.v);
}

}  // namespace qvg::core
