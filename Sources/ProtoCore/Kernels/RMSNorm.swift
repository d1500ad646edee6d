// RMSNorm with a per-channel gain: y = x · rstd · w, rstd = 1/sqrt(mean(x²) + eps).

/// out(N,C), rstd(N) from inp(N,C) and weight(C).
public func rmsnormForward(_ out: UnsafeMutablePointer<Float>, _ rstd: UnsafeMutablePointer<Float>,
                           _ inp: UnsafePointer<Float>, _ weight: UnsafePointer<Float>,
                           _ N: Int, _ C: Int, eps: Float) {
    Parallel.chunks(N, minPerChunk: 128) { lo, hi in
        for i in lo..<hi {
            let x = inp + i * C, y = out + i * C
            var ss: Float = 0
            for c in 0..<C { ss += x[c] * x[c] }
            let r = 1 / (ss / Float(C) + eps).squareRoot()
            rstd[i] = r
            for c in 0..<C { y[c] = x[c] * r * weight[c] }
        }
    }
}

/// Accumulates dinp(N,C) and dweight(C).
/// With xhat = x·r and g = dout·w: dx = r · (g − xhat · mean(g · xhat)), dw = Σ dout · xhat.
public func rmsnormBackward(_ dinp: UnsafeMutablePointer<Float>, _ dweight: UnsafeMutablePointer<Float>,
                            _ dout: UnsafePointer<Float>, _ inp: UnsafePointer<Float>,
                            _ weight: UnsafePointer<Float>, _ rstd: UnsafePointer<Float>,
                            _ N: Int, _ C: Int) {
    Parallel.chunks(N, minPerChunk: 128) { lo, hi in
        for i in lo..<hi {
            let x = inp + i * C, dy = dout + i * C, dx = dinp + i * C
            let r = rstd[i]
            var dot: Float = 0
            for c in 0..<C { dot += dy[c] * weight[c] * x[c] * r }
            let m = dot / Float(C)
            for c in 0..<C { dx[c] += r * (dy[c] * weight[c] - x[c] * r * m) }
        }
    }
    for i in 0..<N {  // gain gradient is a reduction over rows: kept serial and ordered
        let x = inp + i * C, dy = dout + i * C
        let r = rstd[i]
        for c in 0..<C { dweight[c] += dy[c] * x[c] * r }
    }
}

/// Gain-free RMSNorm of rows of width W whose mean square is taken over `D` values (D = W for a
/// dense write; D = d for subspace coordinates, whose write c·Uᵀ has ‖c‖² spread over d):
/// out = x · r, r = 1/sqrt(Σx²/D + eps) into rstd (N). With `accumulateInto`, adds out there
/// instead of writing `out` (which may then alias `x`).
public func gainFreeNormForward(_ out: UnsafeMutablePointer<Float>, _ rstd: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>,
                                _ N: Int, _ W: Int, over D: Int, eps: Float, accumulateInto: UnsafeMutablePointer<Float>? = nil) {
    Parallel.chunks(N, minPerChunk: 128) { lo, hi in
        for i in lo..<hi {
            let row = x + i * W
            var ss: Float = 0
            for c in 0..<W { ss += row[c] * row[c] }
            let r = 1 / (ss / Float(D) + eps).squareRoot()
            rstd[i] = r
            if let acc = accumulateInto { for c in 0..<W { acc[i * W + c] += row[c] * r } }
            else { for c in 0..<W { out[i * W + c] = row[c] * r } }
        }
    }
}

/// dx (N, W) = r · (dz − z · (z·dz)/D) with z = x·r: the backward of `gainFreeNormForward`.
public func gainFreeNormBackward(_ dx: UnsafeMutablePointer<Float>, _ dz: UnsafePointer<Float>, _ x: UnsafePointer<Float>,
                                 _ rstd: UnsafePointer<Float>, _ N: Int, _ W: Int, over D: Int) {
    Parallel.chunks(N, minPerChunk: 128) { lo, hi in
        for i in lo..<hi {
            let r = rstd[i], xr = x + i * W, g = dz + i * W
            var dot: Float = 0
            for c in 0..<W { dot += xr[c] * r * g[c] }
            let m = dot / Float(D)
            for c in 0..<W { dx[i * W + c] = r * (g[c] - xr[c] * r * m) }
        }
    }
}
