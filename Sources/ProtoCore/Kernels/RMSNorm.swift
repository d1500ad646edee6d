// RMSNorm with a per-channel gain: y = x · rstd · w, rstd = 1/sqrt(mean(x²) + eps).
import CKernels

/// out(N,C), rstd(N) from inp(N,C) and weight(C).
public func rmsnormForward(_ out: UnsafeMutablePointer<Float>, _ rstd: UnsafeMutablePointer<Float>,
                           _ inp: UnsafePointer<Float>, _ weight: UnsafePointer<Float>,
                           _ N: Int, _ C: Int, eps: Float) {
    let vector = VectorKernels.use
    Parallel.chunks(N, minPerChunk: 128) { lo, hi in
        for i in lo..<hi {
            let x = inp + i * C, y = out + i * C
            let r = 1 / (dot(x, x, C) / Float(C) + eps).squareRoot()
            rstd[i] = r
            if vector { pm_scale_gain(y, x, r, weight, Int32(C)) } else { for c in 0..<C { y[c] = x[c] * r * weight[c] } }
        }
    }
}

/// Accumulates dinp(N,C) and dweight(C).
/// With xhat = x·r and g = dout·w: dx = r · (g − xhat · mean(g · xhat)), dw = Σ dout · xhat.
public func rmsnormBackward(_ dinp: UnsafeMutablePointer<Float>, _ dweight: UnsafeMutablePointer<Float>,
                            _ dout: UnsafePointer<Float>, _ inp: UnsafePointer<Float>,
                            _ weight: UnsafePointer<Float>, _ rstd: UnsafePointer<Float>,
                            _ N: Int, _ C: Int) {
    let vector = VectorKernels.use
    Parallel.chunks(N, minPerChunk: 128) { lo, hi in
        for i in lo..<hi {
            let x = inp + i * C, dy = dout + i * C, dx = dinp + i * C
            let r = rstd[i]
            let m = dot3(dy, weight, x, C) * r / Float(C)
            if vector { pm_rmsnorm_backward_row(dx, dy, weight, x, r, m, Int32(C)); continue }
            for c in 0..<C { dx[c] += r * (dy[c] * weight[c] - x[c] * r * m) }
        }
    }
    // The gain gradient sums over rows: each worker owns a range of channels and adds the rows
    // in order, so the result does not depend on the number of threads.
    Parallel.chunks(C, minPerChunk: 32) { clo, chi in
        for i in 0..<N {
            let x = inp + i * C, dy = dout + i * C
            let r = rstd[i]
            if vector { pm_add_product_scaled(dweight + clo, dy + clo, x + clo, r, Int32(chi - clo)); continue }
            for c in clo..<chi { dweight[c] += dy[c] * x[c] * r }
        }
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
            let r = 1 / (dot(row, row, W) / Float(D) + eps).squareRoot()
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
            let m = dot(xr, g, W) * r / Float(D)
            for c in 0..<W { dx[i * W + c] = r * (g[c] - xr[c] * r * m) }
        }
    }
}
