// Token embedding lookup. Positions enter through RoPE inside attention, so there is no
// positional table in the residual stream (needed by the subspace constraint).

/// out(N,C) = wte[ids] (V,C) row gather; out += sign·wte[ids] when `accumulate`.
public func embeddingForward(_ out: UnsafeMutablePointer<Float>, _ ids: UnsafePointer<Int32>,
                             _ wte: UnsafePointer<Float>, _ N: Int, _ C: Int, accumulate: Bool = false, sign: Float = 1) {
    Parallel.chunks(N, minPerChunk: 256) { lo, hi in
        for i in lo..<hi {
            let src = wte + Int(ids[i]) * C, dst = out + i * C
            if accumulate { for c in 0..<C { dst[c] += sign * src[c] } } else { dst.update(from: src, count: C) }
        }
    }
}

/// out(N,C) = x + wte[ids]: one pass where a copy and an accumulating gather would take two.
public func embeddingAdd(_ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ ids: UnsafePointer<Int32>,
                         _ wte: UnsafePointer<Float>, _ N: Int, _ C: Int) {
    Parallel.chunks(N, minPerChunk: 256) { lo, hi in
        for i in lo..<hi {
            let src = wte + Int(ids[i]) * C, xi = x + i * C, dst = out + i * C
            for c in 0..<C { dst[c] = xi[c] + src[c] }
        }
    }
}

/// dwte[ids[i]] += sign·dout[i]. Serial: two tokens may share a row.
public func embeddingBackward(_ dwte: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>,
                              _ ids: UnsafePointer<Int32>, _ N: Int, _ C: Int, sign: Float = 1) {
    for i in 0..<N {
        let dst = dwte + Int(ids[i]) * C, src = dout + i * C
        for c in 0..<C { dst[c] += sign * src[c] }
    }
}
