// Agent Attention (Han et al. 2024, "Agent Attention: On the Integration of Softmax and Linear Attention"),
// training-free on a pretrained UNet as in the paper's AgentSD: agent tokens pooled from the queries.

import type { AttentionCall } from '../../attention/call.js';
import type { AttentionFunction } from '../../attention/functions.js';
import { Tensor } from '../../tensor/index.js';
import { queryGrid } from './use-attention.js';

/** Options of agent attention (Han et al. 2024, "Agent Attention"): the number of agent tokens. */
export interface AgentAttentionOptions {
  /** Number of agent tokens (the paper's agent_num), pooled on a grid with the layer's aspect. */
  agentNum?: number;
  /** When `agentNum` is not given: AgentSD's agent_ratio, agents = tokens · (1 − agentRatio). Default 0.95. */
  agentRatio?: number;
  /** AgentSD's k_scale2: the agent-broadcast logits are scaled by scale^kScale2 (default 0.3). */
  kScale2?: number;
  /** AgentSD's k_shortcut: O = σ(Q·Aᵀ)·σ(A·Kᵀ)·V + kShortcut·V (default 0.075). */
  kShortcut?: number;
}

/** Adaptive average pooling of an (h, w) grid to (ph, pw) cells as a (ph·pw, h·w) matrix (PyTorch's bins). */
export function poolingMatrix(h: number, w: number, ph: number, pw: number): Tensor {
  const m = new Float32Array(ph * pw * h * w);
  for (let i = 0; i < ph; i++) {
    const [y0, y1] = [Math.floor((i * h) / ph), Math.ceil(((i + 1) * h) / ph)];
    for (let j = 0; j < pw; j++) {
      const [x0, x1] = [Math.floor((j * w) / pw), Math.ceil(((j + 1) * w) / pw)];
      const weight = 1 / ((y1 - y0) * (x1 - x0));
      const row = (i * pw + j) * h * w;
      for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) m[row + y * w + x] = weight;
    }
  }
  return new Tensor(m, [ph * pw, h * w]);
}

/** The agent grid: about `n` cells with the aspect of (h, w). */
function agentGrid(n: number, h: number, w: number): [number, number] {
  const ph = Math.min(h, Math.max(1, Math.round(Math.sqrt((n * h) / w))));
  const pw = Math.min(w, Math.max(1, Math.round(n / ph)));
  return [ph, pw];
}

/**
 * Agent attention on the self-attention layers whose queries lie on a grid: A = pool(Q) (agents), then
 * agent aggregation V_A = softmax(A·Kᵀ·scale)·V and agent broadcast O = softmax(Q·Aᵀ·scale^kScale2)·V_A,
 * plus kShortcut·V. Where the agents would be half the tokens or more (AgentSD's condition), or the call
 * has no grid (text, merged tokens), it returns undefined and the layer keeps the engine's default.
 */
export function agentAttention(
  opts: AgentAttentionOptions = {},
): (call: AttentionCall) => AttentionFunction | undefined {
  const agentRatio = opts.agentRatio ?? 0.95;
  const kScale2 = opts.kScale2 ?? 0.3;
  const kShortcut = opts.kShortcut ?? 0.075;
  if (!(agentRatio >= 0 && agentRatio < 1))
    throw new Error(`agentAttention: agentRatio must be in [0, 1), got ${agentRatio}`);
  if (opts.agentNum !== undefined && (!Number.isInteger(opts.agentNum) || opts.agentNum < 1)) {
    throw new Error(`agentAttention: agentNum must be a positive integer, got ${opts.agentNum}`);
  }
  const pools = new Map<string, Tensor>();
  return function agent(call) {
    const grid = queryGrid(call);
    if (!grid || call.kind !== 'self') return undefined;
    const [h, w] = grid;
    const tokens = h * w;
    const [ph, pw] = agentGrid(opts.agentNum ?? Math.round(tokens * (1 - agentRatio)), h, w);
    if (ph * pw * 2 >= tokens) return undefined;
    const key = `${h}x${w}>${ph}x${pw}`;
    const p = pools.get(key) ?? poolingMatrix(h, w, ph, pw);
    pools.set(key, p);
    return {
      name: 'agent',
      explicit: false,
      run({ q, k, v, scale, bias }) {
        if (bias) throw new Error(`agentAttention at ${call.path}: an additive bias (mask) is not supported`);
        const a = p.matmul(q); // (B, H, n, d): agents pooled from the queries
        const agentV = a.matmul(k, { transB: true, alpha: scale }).softmax(-1).matmul(v); // (B, H, n, dv)
        const out = q
          .matmul(a, { transB: true, alpha: scale ** kScale2 })
          .softmax(-1)
          .matmul(agentV);
        return kShortcut !== 0 && q.shape[2] === v.shape[2] ? out.add(v.mul(kShortcut)) : out;
      },
    };
  };
}
