// MLP activation: ReLU² (as in modded-nanogpt): cheap, sparse, and trains well at small scale.
import CKernels

/// out = max(inp, 0)², n elements.
public func reluSquaredForward(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, _ n: Int) {
    let vector = VectorKernels.use
    Parallel.chunks(n, minPerChunk: 1 << 15) { lo, hi in
        if vector { pm_relu2_forward(out + lo, inp + lo, hi - lo); return }
        for i in lo..<hi { let r = max(inp[i], 0); out[i] = r * r }
    }
}

/// dinp = dout · 2·max(inp, 0). `dinp` may alias `dout`.
public func reluSquaredBackward(_ dinp: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>,
                                _ inp: UnsafePointer<Float>, _ n: Int) {
    let vector = VectorKernels.use
    Parallel.chunks(n, minPerChunk: 1 << 15) { lo, hi in
        if vector { pm_relu2_backward(dinp + lo, dout + lo, inp + lo, hi - lo); return }
        for i in lo..<hi { dinp[i] = dout[i] * 2 * max(inp[i], 0) }
    }
}
