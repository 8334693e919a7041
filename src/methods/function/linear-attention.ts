// Linear attention with a kernel feature map: Katharopoulos et al. 2020, "Transformers are RNNs: Fast
// Autoregressive Transformers with Linear Attention". Used here training-free, in place of softmax.

import type { AttentionFunction } from '../../attention/functions.js';
import { formatShape, type Tensor } from '../../tensor/index.js';

/** φ: 'elu' is elu(x) + 1 (the paper's choice), 'relu' is max(x, 0). */
export type FeatureMap = 'elu' | 'relu';

/** Options of linear attention (Katharopoulos et al. 2020, "Transformers are RNNs"): the feature map. */
export interface LinearAttentionOptions {
  featureMap?: FeatureMap;
  /** Added to the normaliser φ(q)·Σφ(k) (it is 0 where relu zeroes every feature). */
  eps?: number;
}

/** elu(x) + 1 = x + 1 for x > 0, exp(x) otherwise, as relu(x) + exp(min(x, 0)) (differentiable ops only). */
function eluPlusOne(x: Tensor): Tensor {
  return x.relu().add(x.minimum(0).exp());
}

/**
 * out_i = φ(q_i)·(Σ_j φ(k_j)ᵀ v_j) / (φ(q_i)·Σ_j φ(k_j)): O(T·d²) instead of O(T²·d). The numerator and
 * the normaliser come from one product, with a column of ones appended to V. No bias / mask support.
 */
export function linearAttention(opts: LinearAttentionOptions = {}): AttentionFunction {
  const featureMap = opts.featureMap ?? 'elu';
  const eps = opts.eps ?? 1e-6;
  if (featureMap !== 'elu' && featureMap !== 'relu') {
    throw new Error(`linearAttention: featureMap must be 'elu' or 'relu', got '${featureMap as string}'`);
  }
  const phi = featureMap === 'elu' ? eluPlusOne : (x: Tensor) => x.relu();
  return {
    name: `linear-${featureMap}`,
    explicit: false,
    run({ q, k, v, bias }) {
      if (bias)
        throw new Error('linearAttention: an additive bias (mask) cannot be applied to linear attention');
      if (q.rank !== 4 || k.rank !== 4 || v.rank !== 4) {
        throw new Error(
          `linearAttention: expected q, k, v of rank 4 (B, H, T, d), got ${formatShape(q.shape)}, ` +
            `${formatShape(k.shape)}, ${formatShape(v.shape)}`,
        );
      }
      const dv = v.shape[3] as number;
      const ones = v.pad([0, 0, 0, 0, 0, 0, 0, 1], 'constant', 1); // (B, H, Tk, dv + 1)
      const kv = phi(k).matmul(ones, { transA: true }); // (B, H, d, dv + 1)
      const out = phi(q).matmul(kv); // (B, H, Tq, dv + 1)
      const [num, den] = out.split([dv, 1], -1) as [Tensor, Tensor];
      return num.div(den.add(eps));
    },
  };
}
