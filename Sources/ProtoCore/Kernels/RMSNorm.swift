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
