// exp and softmax rows for attention and the loss, written as plain loops over a branch-free
// scalar exp so LLVM vectorises them (Swift's SIMD16 types were scalarised here and ran
// 4× slower than libm). Max relative error of expPoly vs expf: ~2e-7.

/// e^x: x = n·ln2 + r with |r| ≤ ln2/2, e^r by a degree-6 polynomial, 2^n by building the
/// exponent bits. x is clamped to [−87, 88]: softmax arguments are ≤ 0 and e^−87 ≈ 1.6e−38
/// is zero for every sum it enters.
@inline(__always)
func expPoly(_ x: Float) -> Float {
    let xc = min(max(x, -87), 88)
    let magic: Float = 12_582_912  // adding 1.5·2²³ rounds to an integer kept in the low mantissa bits
    let t = xc * 1.442_695_04 + magic
    let n = t - magic
    var r = xc - n * 0.693_145_75  // ln2 in two parts, so the reduction is exact
    r = r - n * 1.428_606_8e-6
    var p: Float = 1.0 / 720
    p = p * r + 1.0 / 120
    p = p * r + 1.0 / 24
    p = p * r + 1.0 / 6
    p = p * r + 0.5
    p = p * r + 1
    p = p * r + 1
    let ni = Int32(bitPattern: t.bitPattern) &- Int32(bitPattern: magic.bitPattern)
    return p * Float(bitPattern: UInt32(bitPattern: (ni &+ 127) &<< 23))
}

/// Σ v[j] over j < n with 8 independent partial sums (breaks the add latency chain).
@inline(__always)
func sum(_ v: UnsafePointer<Float>, _ n: Int) -> Float {
    var s0: Float = 0, s1: Float = 0, s2: Float = 0, s3: Float = 0
    var s4: Float = 0, s5: Float = 0, s6: Float = 0, s7: Float = 0
    var j = 0
    while j + 8 <= n {
        s0 += v[j]; s1 += v[j + 1]; s2 += v[j + 2]; s3 += v[j + 3]
        s4 += v[j + 4]; s5 += v[j + 5]; s6 += v[j + 6]; s7 += v[j + 7]; j += 8
    }
    var s = ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
    while j < n { s += v[j]; j += 1 }
    return s
}

/// Σ a[j]·b[j] over j < n.
@inline(__always)
func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
    var s0: Float = 0, s1: Float = 0, s2: Float = 0, s3: Float = 0
    var s4: Float = 0, s5: Float = 0, s6: Float = 0, s7: Float = 0
    var j = 0
    while j + 8 <= n {
        s0 += a[j] * b[j]; s1 += a[j + 1] * b[j + 1]; s2 += a[j + 2] * b[j + 2]; s3 += a[j + 3] * b[j + 3]
        s4 += a[j + 4] * b[j + 4]; s5 += a[j + 5] * b[j + 5]; s6 += a[j + 6] * b[j + 6]; s7 += a[j + 7] * b[j + 7]
        j += 8
    }
    var s = ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
    while j < n { s += a[j] * b[j]; j += 1 }
    return s
}

/// Σ a[j]·b[j]·c[j] over j < n, 8 partial sums.
@inline(__always)
func dot3(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafePointer<Float>, _ n: Int) -> Float {
    var s0: Float = 0, s1: Float = 0, s2: Float = 0, s3: Float = 0
    var s4: Float = 0, s5: Float = 0, s6: Float = 0, s7: Float = 0
    var j = 0
    while j + 8 <= n {
        s0 += a[j] * b[j] * c[j]; s1 += a[j + 1] * b[j + 1] * c[j + 1]
        s2 += a[j + 2] * b[j + 2] * c[j + 2]; s3 += a[j + 3] * b[j + 3] * c[j + 3]
        s4 += a[j + 4] * b[j + 4] * c[j + 4]; s5 += a[j + 5] * b[j + 5] * c[j + 5]
        s6 += a[j + 6] * b[j + 6] * c[j + 6]; s7 += a[j + 7] * b[j + 7] * c[j + 7]
        j += 8
    }
    var s = ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
    while j < n { s += a[j] * b[j] * c[j]; j += 1 }
    return s
}

/// max over v[0..<n] (−inf when n = 0), 8 partial maxima so the loop vectorises.
@inline(__always)
func maxValue(_ v: UnsafePointer<Float>, _ n: Int) -> Float {
    var m0 = -Float.infinity, m1 = m0, m2 = m0, m3 = m0, m4 = m0, m5 = m0, m6 = m0, m7 = m0
    var j = 0
    while j + 8 <= n {
        m0 = Swift.max(m0, v[j]); m1 = Swift.max(m1, v[j + 1]); m2 = Swift.max(m2, v[j + 2]); m3 = Swift.max(m3, v[j + 3])
        m4 = Swift.max(m4, v[j + 4]); m5 = Swift.max(m5, v[j + 5]); m6 = Swift.max(m6, v[j + 6]); m7 = Swift.max(m7, v[j + 7])
        j += 8
    }
    var m = Swift.max(Swift.max(Swift.max(m0, m1), Swift.max(m2, m3)), Swift.max(Swift.max(m4, m5), Swift.max(m6, m7)))
    while j < n { m = Swift.max(m, v[j]); j += 1 }
    return m
}

/// Σ e^(v[j] − shift) over j < n: exps in blocks of 256 into `tmp` (the vectorised loop of
/// `expShifted`), each block summed with 8 partial sums. `tmp` holds at least min(n, 256) floats.
@inline(__always)
func sumExpShifted(_ v: UnsafePointer<Float>, _ n: Int, shift: Float, tmp: UnsafeMutablePointer<Float>) -> Float {
    var s: Float = 0, j = 0
    while j < n {
        let m = min(256, n - j)
        expShifted(tmp, v + j, m, shift: shift)
        s += sum(tmp, m)
        j += m
    }
    return s
}

/// out[j] = e^(inp[j] − shift) · scale for j < n (out may alias inp).
@inline(__always)
func expShifted(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, _ n: Int, shift: Float, scale: Float = 1) {
    for j in 0..<n { out[j] = expPoly(inp[j] - shift) * scale }
}

/// In place: row[0..<n] ← softmax(row[0..<n]).
@inline(__always)
func softmaxRow(_ row: UnsafeMutablePointer<Float>, _ n: Int) {
    let mx = maxValue(row, n)
    expShifted(row, row, n, shift: mx)
    let inv = 1 / sum(row, n)
    for j in 0..<n { row[j] *= inv }
}
