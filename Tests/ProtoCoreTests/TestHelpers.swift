// Shared assertions and finite-difference machinery for the core tests.
import XCTest
import ProtoCore

/// ‖a − b‖ / max(‖b‖, tiny): a norm-wise relative error that is stable near zero entries.
func relError(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Double {
    var num = 0.0, den = 0.0
    for i in 0..<n { let d = Double(a[i]) - Double(b[i]); num += d * d; den += Double(b[i]) * Double(b[i]) }
    return (num / max(den, 1e-30)).squareRoot()
}

func relError(_ a: [Float], _ b: [Float]) -> Double {
    precondition(a.count == b.count)
    return a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { relError(pa.baseAddress!, $0.baseAddress!, a.count) } }
}

func assertClose(_ a: Double, _ b: Double, rtol: Double, atol: Double = 0, _ what: String = "",
                 file: StaticString = #filePath, line: UInt = #line) {
    XCTAssert(abs(a - b) <= atol + rtol * abs(b), "\(what): \(a) vs \(b) (rtol \(rtol), atol \(atol))", file: file, line: line)
}

func randomArray(_ n: Int, seed: UInt64, std: Float = 1) -> [Float] {
    var r = SplitMix64(seed: seed), a = [Float](repeating: 0, count: n)
    a.withUnsafeMutableBufferPointer { r.fillNormal($0.baseAddress!, n, std: std) }
    return a
}

/// Σ out·r in Double: a random linear read-out turns any kernel into a scalar loss whose
/// gradient with respect to `out` is exactly r.
func readout(_ out: UnsafePointer<Float>, _ r: [Float]) -> Double {
    var s = 0.0
    for i in 0..<r.count { s += Double(out[i]) * Double(r[i]) }
    return s
}

/// Checks analytic gradients of `f` with respect to `x` by central differences on the
/// `samples` coordinates with the largest analytic gradient (best signal in Float32).
func checkGradient(_ what: String, x: UnsafeMutablePointer<Float>, analytic: UnsafePointer<Float>, count: Int,
                   samples: Int = 6, eps: Float = 1e-2, rtol: Double = 2e-2,
                   file: StaticString = #filePath, line: UInt = #line, f: () -> Double) {
    let order = (0..<count).sorted { abs(analytic[$0]) > abs(analytic[$1]) }
    var scale = 0.0
    for i in 0..<count { scale = max(scale, Double(abs(analytic[i]))) }
    XCTAssert(scale > 0, "\(what): analytic gradient is all zero", file: file, line: line)
    for i in order.prefix(samples) + [order[count / 2]] {
        let x0 = x[i]
        x[i] = x0 + eps; let fp = f()
        x[i] = x0 - eps; let fm = f()
        x[i] = x0
        let numeric = (fp - fm) / (2 * Double(eps))
        XCTAssert(abs(numeric - Double(analytic[i])) <= rtol * scale,
                  "\(what)[\(i)]: numeric \(numeric) vs analytic \(analytic[i]) (scale \(scale))", file: file, line: line)
    }
}

/// A FloatBuffer holding `a` (tests pass its pointer to kernels and closures freely).
func buf(_ a: [Float]) -> FloatBuffer { let b = FloatBuffer(count: a.count); b.copy(from: a); return b }
func zeros(_ n: Int) -> FloatBuffer { FloatBuffer(count: n) }

/// Finite differences against the analytic gradient of every tensor of a whole model on
/// one random batch of 2 rows.
func checkWholeModelGradients(_ cfg: ModelConfig, seed: UInt64, label: String = "", eps: Float = 1e-2,
                              prepare: (StageModel) -> Void = { _ in },
                              file: StaticString = #filePath, line: UInt = #line) {
    let model = StageModel(config: cfg, stage: .whole(cfg), batchSize: 2)
    prepare(model)
    let N = 2 * cfg.seqLen
    var rng = SplitMix64(seed: seed)
    let ids = (0..<N).map { _ in Int32(rng.int(below: cfg.vocabSize)) }
    let targets = (0..<N).map { _ in Int32(rng.int(below: cfg.vocabSize)) }
    func loss() -> Double { Double(model.forward(slot: 0, ids: ids, targets: targets)!) }
    _ = loss()
    model.zeroGrad()
    model.backward(slot: 0, lossScale: 1 / Float(N))
    let analytic = model.grads.toArray()
    for t in model.layout.tensors {
        analytic.withUnsafeBufferPointer {
            checkGradient(label + t.name, x: model.params.ptr + t.offset, analytic: $0.baseAddress! + t.offset,
                          count: t.count, samples: 3, eps: eps, rtol: 5e-2, file: file, line: line, f: loss)
        }
    }
}
