// The interpreter: runs one stage's action list for a training or evaluation step, moving
// boundary tensors through its codec and link.
import Foundation
import ProtoCore

/// What one stage measured during one step. Gathered to rank 0 as a typed record.
public struct StageStepMetrics: Codable, Sendable, Equatable {
    public var lossSum: Double = 0          // Σ micro-batch mean losses (last stage only)
    public var gradSumSquares: Double = 0   // this stage's Σ grad² before clipping
    public var forwardSeconds: Double = 0   // compute (thread CPU) in forwards
    public var backwardSeconds: Double = 0
    public var optimizerSeconds: Double = 0
    public var codecSeconds: Double = 0     // encode + decode
    public var recvWaitSeconds: Double = 0  // wall time blocked in receives
    public var stepWallSeconds: Double = 0
    public var bytesSentForward: Double = 0
    public var bytesSentBackward: Double = 0
    public var bytesSentTargets: Double = 0
    public var bytesSentSync: Double = 0      // keeping shared state identical (adaptive U, projectors)
    public var bytesSentReplica: Double = 0   // data-parallel gradient exchange between replicas of this stage
    public var replicaSeconds: Double = 0     // emulated time of that exchange (ring all-reduce model)
    public var wireError = WireErrorStats()  // reconstruction error of what this stage sent
    public var timing: [LinkTiming] = []      // per emulated link: link wait, bubble, clock at step end
    public var skipped = false                 // the update was skipped (non-finite gradients, --skip-nonfinite)
    public var peakResidentBytes = 0.0         // this rank's peak memory so far

    public init() {}

    /// The record as it travels to rank 0 (JSON, non-finite values as strings: a skipped
    /// step's loss may be NaN).
    public func encoded() throws -> Data { try Self.encoder.encode(self) }
    public static func decoded(_ data: Data) throws -> StageStepMetrics { try decoder.decode(Self.self, from: data) }
    private static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return e
    }()
    private static let decoder: JSONDecoder = {
        let d = JSONDecoder()
        d.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return d
    }()
    public var computeSeconds: Double { forwardSeconds + backwardSeconds + optimizerSeconds + codecSeconds }
}

public final class PipelineStage {
    public let model: StageModel
    public let optimizer: AdamW
    public let train: TrainConfig
    public let schedule: PipelineSchedule
    public let codec: WireCodec
    public var comm: StageComm
    /// This rank's emulated time (link emulator and clocks).
    public let time: EmulatedTime
    /// Skip the update of a step whose loss or gradients are not finite (instead of stopping).
    public var skipNonFinite = false
    /// How gradients travel between data-parallel replicas (fp32 exact; bf16/int8 lossy).
    public var replicaFormat: CoordinateFormat = .fp32
    /// Data-parallel cadence H. 1: the replicas' gradients are summed every step (exact data
    /// parallelism). H > 1 (local SGD): each replica steps on its own micro-batches' mean
    /// gradient, clipped by its own pipeline's norm, with its own Adam moments, and every H
    /// steps the replicas average their weights (fp32) — 1/H of the exchanges for the price
    /// of replicas drifting apart in between. Not with adaptive U or projectors (their
    /// manifold sync spans every replica).
    public var replicaSyncEvery = 1 {
        didSet { precondition(replicaSyncEvery >= 1 && (replicaSyncEvery == 1 || model.manifoldTraining == nil), "local SGD needs fixed manifolds") }
    }
    var localSGD: Bool { replicaSyncEvery > 1 && comm.replicas > 1 }
    /// The replica exchange's scratch (the size of the largest exchanged buffer), allocated
    /// once instead of every step.
    private var replicaScratch: FloatBuffer?
    /// Test hook: poison this stage's gradients at this step (1-based, as the console counts).
    public var injectNaNAtStep: Int?
    public var stageIndex: Int { comm.stage }
    public var isFirst: Bool { comm.stage == 0 }
    public var isLast: Bool { comm.stage == comm.stages - 1 }
    private let actions: [Action]
    private let evalActions: [Action]
    private var slotOf: [Int: Int] = [:]
    private var freeSlots: [Int]
    private var ids: [[Int32]]       // per micro-batch token ids (from data or the wire)
    private var targets: [[Int32]]   // per micro-batch targets (last stage)
    private let dOut: FloatBuffer    // decoded gradient of our output

    /// `stage` is this rank's part of the model; the first stage must be rank 0.
    /// `makeCodec` gets the stage's model (the subspace codec shares its U and E_fixed).
    public init(config: ModelConfig, stage: StageSpec, train: TrainConfig, schedule: PipelineSchedule,
                makeCodec: (StageModel) -> WireCodec, comm: StageComm,
                time: EmulatedTime = EmulatedTime(mode: .virtual, links: [.off])) {
        self.train = train; self.schedule = schedule; self.comm = comm; self.time = time
        self.comm.clock = { [time] in time.stamps() }
        actions = schedule.actions(stage: comm.stage)
        evalActions = schedule.evalActions(stage: comm.stage)
        let slots = max(1, schedule.maxInFlight(stage: comm.stage))
        model = StageModel(config: config, stage: stage, batchSize: train.batchSize, slots: slots)
        optimizer = AdamW(layout: model.layout, config: train.adamw)
        codec = makeCodec(model)
        let link = comm.link
        model.progress = { link.progress() }
        freeSlots = Array((0..<slots).reversed())
        let N = model.tokensPerMicrobatch
        ids = Array(repeating: [Int32](repeating: 0, count: N), count: schedule.microbatches)
        targets = ids
        dOut = FloatBuffer(count: comm.stage == comm.stages - 1 ? 1 : N * config.dModel)
    }

    /// One training step. The first stage passes the step's M micro-batches (it loads the
    /// data); the others pass nil. Returns what this stage measured; after it, every stage
    /// has applied its own AdamW update with the globally clipped gradient.
    public func trainStep(_ step: Int, batches: [Microbatch]?) throws -> StageStepMetrics {
        model.zeroGrad()
        return try run(actions, step: step, batches: batches)
    }

    /// Forward-only pass over `batches` (first stage) for validation; loss on the last stage.
    public func evalStep(batches: [Microbatch]?) throws -> StageStepMetrics {
        time.suspend()
        defer { time.resume() }
        return try run(evalActions, step: -1, batches: batches)
    }

    private func run(_ list: [Action], step: Int, batches: [Microbatch]?) throws -> StageStepMetrics {
        let N = model.tokensPerMicrobatch, d = model.config.dModel
        let M = schedule.microbatches
        if isFirst {
            guard let batches, batches.count == M else {
                throw LinkError("stage 0 needs \(M) micro-batches for the step, got \(batches?.count ?? 0)")
            }
            for m in 0..<M {
                precondition(batches[m].ids.count == N, "micro-batch of \(batches[m].ids.count) tokens, expected \(N)")
                ids[m] = batches[m].ids; targets[m] = batches[m].targets
            }
        }
        var met = StageStepMetrics()
        codec.errorStats = WireErrorStats()
        time.beginStep()
        let stepStart = Clock.wall()
        // The whole step: all replicas' micro-batches (local SGD: this replica's own).
        let lossScale = 1 / Float(N * M * (localSGD ? 1 : comm.replicas))
        for a in list {
          do {
            switch a {
            case let .sendTargets(m):
                let b = WireBuffer(payloadBytes: 4 * N)
                targets[m].withUnsafeBytes { b.payload.copyMemory(from: $0.baseAddress!, byteCount: 4 * N) }
                try comm.sendTargets(m, b)
                met.bytesSentTargets += Double(b.count)
            case let .recvTargets(m):
                let b = try timedRecv(&met, charged: false) { try comm.recvTargets(m) }
                guard b.payloadBytes == 4 * N else { throw LinkError("stage \(stageIndex): targets message of \(b.payloadBytes) bytes, expected \(4 * N)") }
                targets[m].withUnsafeMutableBytes { $0.baseAddress!.copyMemory(from: b.payload, byteCount: 4 * N) }
            case let .recvForward(m):
                let b = try timedRecv(&met, charged: true, boundary: stageIndex - 1) { try comm.recvForward(m) }
                let slot = takeSlot(m)
                let t0 = Clock.threadCPU()
                try ids[m].withUnsafeMutableBufferPointer {
                    try codec.decodeForward(b, into: model.input(slot: slot), ids: $0.baseAddress!, n: N, d: d)
                }
                met.codecSeconds += computed(t0)
            case let .forward(m):
                let slot = slotOf[m] ?? takeSlot(m)
                let t0 = Clock.threadCPU()
                let loss = ids[m].withUnsafeBufferPointer { i in
                    targets[m].withUnsafeBufferPointer { t in
                        model.forward(slot: slot, ids: i.baseAddress!, targets: isLast ? t.baseAddress! : nil)
                    }
                }
                met.forwardSeconds += computed(t0)
                if let loss {
                    guard loss.isFinite || (skipNonFinite && step >= 0) else { throw NonFiniteError(what: "loss", stage: stageIndex, step: step + 1, microbatch: m) }
                    met.lossSum += Double(loss)
                }
                if step < 0 && isLast { releaseSlot(m) }  // evaluation keeps nothing for backward
            case let .sendForward(m):
                let t0 = Clock.threadCPU()
                let b = ids[m].withUnsafeBufferPointer { codec.encodeForward(model.output(slot: slotOf[m]!), ids: $0.baseAddress!, n: N, d: d) }
                met.codecSeconds += computed(t0)
                try comm.sendForward(m, b)
                met.bytesSentForward += Double(b.count)
                if step < 0 { releaseSlot(m) }
            case let .recvBackward(m):
                let b = try timedRecv(&met, charged: true, boundary: stageIndex, fromLaterStage: true) { try comm.recvBackward(m) }
                let t0 = Clock.threadCPU()
                try ids[m].withUnsafeBufferPointer { try codec.decodeBackward(b, into: dOut.ptr, ids: $0.baseAddress!, n: N, d: d) }
                met.codecSeconds += computed(t0)
            case let .backward(m):
                let t0 = Clock.threadCPU()
                model.backward(slot: slotOf[m]!, dOutput: isLast ? nil : UnsafePointer(dOut.ptr), lossScale: lossScale)
                met.backwardSeconds += computed(t0)
                releaseSlot(m)
            case let .sendBackward(m):
                let t0 = Clock.threadCPU()
                let b = ids[m].withUnsafeBufferPointer { codec.encodeBackward(model.inputGradient, ids: $0.baseAddress!, n: N, d: d) }
                met.codecSeconds += computed(t0)
                try comm.sendBackward(m, b)
                met.bytesSentBackward += Double(b.count)
            case .optimizerStep:
                let t0 = Clock.threadCPU()
                model.projectGradients()
                if injectNaNAtStep == step + 1 { model.grads.ptr[0] = .nan }
                met.optimizerSeconds += computed(t0)
                if !localSGD { try sumReplicaGradients(&met) }
                let local = model.gradSumSquares()
                try syncManifoldGradients(step, &met)
                let global: Double, allFinite: Bool
                if localSGD {
                    // Each replica's own pipeline norm: one slot per replica in the all-reduce.
                    var slots = [Double](repeating: 0, count: comm.replicas)
                    slots[comm.replica] = local
                    let norms = try comm.link.allreduceSum(slots)
                    global = norms[comm.replica]
                    allFinite = norms.allSatisfy(\.isFinite)  // every rank decides alike
                } else {
                    // Every replica of a stage now holds the same gradient: the world sum
                    // counts each stage `replicas` times.
                    global = try comm.link.allreduceSum([local])[0] / Double(comm.replicas)
                    allFinite = global.isFinite
                }
                // The norm all-reduce synchronises every rank's emulated clock.
                let latest = time.mode == .virtual ? try comm.link.allreduceMax(time.clocks) : []
                time.allreduced(maxClocks: latest, ranks: comm.stages * comm.replicas)
                met.gradSumSquares = local
                if !allFinite {
                    // Every rank sees the same global norm, so all skip or all stop together.
                    guard skipNonFinite else {
                        let culprit = local.isFinite ? "another stage's" : "this stage's"
                        throw NonFiniteError(what: "gradient norm (\(culprit) gradients)", stage: stageIndex, step: step + 1, microbatch: nil)
                    }
                    met.skipped = true
                    continue
                }
                let t1 = Clock.threadCPU()
                model.applyUpdate(step: step, globalNorm: global.squareRoot(), optimizer: optimizer, train: train)
                met.optimizerSeconds += computed(t1)
                if localSGD && (step + 1) % replicaSyncEvery == 0 { try averageReplicas(optimizerState: false, &met) }
            }
          } catch let e as NonFiniteError {
            throw e
          } catch {
            throw LinkError("stage \(stageIndex), action \(a): \(error)")
          }
        }
        try comm.link.waitSends()
        met.wireError = codec.errorStats
        met.peakResidentBytes = Double(ProcessMemory.peakResidentBytes())
        time.endStep()
        met.timing = time.timing
        met.stepWallSeconds = Clock.wall() - stepStart
        return met
    }

    /// Data parallelism: the replicas of this stage each computed the gradient of their share
    /// of the step's micro-batches (scaled by the whole step's token count), so the step's
    /// gradient is their sum. Gradients travel in `replicaFormat` (rows of 256 values with a
    /// per-row scale for the lossy formats).
    private func sumReplicaGradients(_ met: inout StageStepMetrics) throws {
        try reduceAcrossReplicas(model.grads.ptr, count: model.grads.count, format: replicaFormat, mean: false, &met)
    }

    /// Local SGD's synchronisation: every replica of this stage takes the mean of their
    /// weights (and with `optimizerState`, of their Adam moments — checkpoints do, so a
    /// resumed run continues from state every replica shares), exactly, in fp32.
    public func averageReplicas(optimizerState: Bool, _ met: inout StageStepMetrics) throws {
        guard comm.replicas > 1 else { return }
        try reduceAcrossReplicas(model.params.ptr, count: model.params.count, format: .fp32, mean: true, &met)
        if optimizerState {
            try reduceAcrossReplicas(optimizer.m.ptr, count: optimizer.m.count, format: .fp32, mean: true, &met)
            try reduceAcrossReplicas(optimizer.v.ptr, count: optimizer.v.count, format: .fp32, mean: true, &met)
        }
    }

    /// Replaces `values` on every replica of this stage by their sum (or mean) over the
    /// replicas. Replica 0's rank gathers the parts, adds them into its own in replica order
    /// and sends the result back, so every replica holds the same bits. Extra memory: one
    /// buffer the size of `values`. The exchange is charged to the emulated link as a ring
    /// all-reduce of the same bytes, 2(R−1) hops of bytes/R each; every message sent is
    /// counted as replica bytes.
    private func reduceAcrossReplicas(_ g: UnsafeMutablePointer<Float>, count n: Int, format: CoordinateFormat, mean: Bool,
                                      _ met: inout StageStepMetrics) throws {
        guard comm.replicas > 1 else { return }
        let group = comm.replicaGroup, me = comm.link.rank, root = group[0]
        let width = 256, rows = (n + width - 1) / width
        let payload = rows * format.rowBytes(k: width)
        // One scratch buffer, kept between steps: the values to encode (rounded in place by
        // the encoder to what the receiver will decode), or a decoded message.
        if (replicaScratch?.count ?? -1) < rows * width { replicaScratch = FloatBuffer(count: rows * width) }
        let scratch = replicaScratch!
        func encode(_ values: UnsafePointer<Float>) -> WireBuffer {
            scratch.ptr.update(from: values, count: n)
            (scratch.ptr + n).update(repeating: 0, count: rows * width - n)
            let b = WireBuffer(payloadBytes: payload)
            format.encode(scratch.ptr, rows: rows, k: width, into: b.payload)
            return b
        }
        func decode(_ b: WireBuffer, from peer: Int) throws {
            guard b.payloadBytes == payload else {
                throw LinkError("stage \(stageIndex): replica exchange from rank \(peer) has \(b.payloadBytes) bytes, expected \(payload) (replicas of different models?)")
            }
            format.decode(b.payload, rows: rows, k: width, into: scratch.ptr)
        }
        var latest = time.clocks
        if me == root {
            for peer in group.dropFirst() {
                let b = try comm.recvReplica(0, from: peer)
                for (i, s) in b.stamps.enumerated() where i < latest.count { latest[i] = max(latest[i], s) }
                try decode(b, from: peer)
                for i in 0..<n { g[i] += scratch.ptr[i] }
            }
            if mean {
                let inv = 1 / Float(comm.replicas)
                for i in 0..<n { g[i] *= inv }
            }
            let out = encode(g)
            // What the others decode is what the root keeps, so the replicas stay bit-identical.
            g.update(from: scratch.ptr, count: n)
            var c = comm  // the result carries the group's latest clocks
            let stamps = latest
            c.clock = { stamps }
            for peer in group.dropFirst() {
                try c.sendReplica(1, to: peer, out)
                met.bytesSentReplica += Double(out.count)
            }
        } else {
            let b = encode(g)
            try comm.sendReplica(0, to: root, b)
            met.bytesSentReplica += Double(b.count)
            let sum = try comm.recvReplica(1, from: root)
            latest = sum.stamps
            try decode(sum, from: root)
            g.update(from: scratch.ptr, count: n)
        }
        met.replicaSeconds += time.replicaExchange(maxClocks: latest, bytes: WireBuffer.headerBytes + payload, replicas: comm.replicas)
    }

    /// Makes each manifold tensor's gradient complete and identical on every stage holding
    /// it (SPEC §2, ways 1 and 2): an adaptive U's per-stage parts are summed at rank 0 in
    /// rank order and sent back to all; a projector's two parts (the sender and the receiver
    /// of its boundary) are swapped and added. These messages cross the emulated link like
    /// boundary traffic and are counted as sync bytes. Each carries a hash of the sender's
    /// copy, so copies that drifted apart stop the run at once.
    private func syncManifoldGradients(_ step: Int, _ met: inout StageStepMetrics) throws {
        guard let tr = model.manifoldTraining, (step + 1) % tr.every == 0, comm.stages > 1 else { return }
        let me = comm.stage
        func copyHash(_ t: ParamTensor) -> UInt64 { Basis(d: t.shape[0], k: t.shape[1], at: model.params.ptr + t.offset).hash }
        func message(_ t: ParamTensor, _ values: UnsafePointer<Float>) -> WireBuffer {
            let b = WireBuffer(payloadBytes: 8 + 4 * t.count)
            b.payload.storeBytes(of: copyHash(t), as: UInt64.self)
            (b.payload + 8).copyMemory(from: values, byteCount: 4 * t.count)
            met.bytesSentSync += Double(b.count)
            return b
        }
        func receive(_ index: Int, from peer: Int, _ t: ParamTensor) throws -> UnsafePointer<Float> {
            // Between neighbours the boundary they share; U's reduce (star on rank 0) the lower one's.
            let b = try timedRecv(&met, charged: true, boundary: min(me, peer), fromLaterStage: peer > me) { try comm.recvSync(index, from: peer) }
            guard b.payloadBytes == 8 + 4 * t.count else {
                throw LinkError("stage \(me): \(t.name) message from rank \(peer) has \(b.payloadBytes) bytes, expected \(8 + 4 * t.count)")
            }
            guard b.payload.loadUnaligned(as: UInt64.self) == copyHash(t) else {
                throw LinkError("stage \(me): rank \(peer)'s copy of \(t.name) differs from this rank's; shared bases must stay bit-identical (same protomodel build and CPU arithmetic on every rank)")
            }
            received.append(b)  // kept alive until the sum is taken
            return UnsafePointer((b.payload + 8).assumingMemoryBound(to: Float.self))
        }
        var received: [WireBuffer] = []
        let tensors = model.manifoldTensors
        if model.config.subspace?.adaptive != nil, let t = tensors.first {
            let g = model.grads.ptr + t.offset
            if me == 0 {
                var acc = (0..<t.count).map { Double(g[$0]) }
                for r in 1..<comm.stages {
                    let part = try receive(0, from: r, t)
                    for i in 0..<t.count { acc[i] += Double(part[i]) }
                }
                for i in 0..<t.count { g[i] = Float(acc[i]) }
                for r in 1..<comm.stages { try comm.sendSync(1, to: r, message(t, g)) }
            } else {
                try comm.sendSync(0, to: 0, message(t, g))
                let sum = try receive(1, from: 0, t)
                g.update(from: sum, count: t.count)
            }
            return
        }
        // Projectors: the boundary before this stage (peer me − 1) and after it (peer me + 1).
        let lo = model.stage.layers.lowerBound, hi = model.stage.layers.upperBound
        var peers: [(ParamTensor, Int, Int)] = []   // tensor, layer, peer
        for t in tensors {
            guard let l = model.config.projector?.boundaries.first(where: { ProjectorConfig.name($0) == t.name }) else { continue }
            if l == lo - 1 { peers.append((t, l, me - 1)) } else if l == hi - 1 && !isLast { peers.append((t, l, me + 1)) }
        }
        for (t, l, peer) in peers { try comm.sendSync(l, to: peer, message(t, model.grads.ptr + t.offset)) }
        for (t, l, peer) in peers {
            let other = try receive(l, from: peer, t)
            let g = model.grads.ptr + t.offset
            for i in 0..<t.count { g[i] += other[i] }  // a + b = b + a exactly: both sides get the same bits
        }
    }

    /// Thread CPU seconds since `t0`; the virtual clocks advance by them.
    private func computed(_ t0: Double) -> Double {
        let dt = Clock.threadCPU() - t0
        time.compute(dt)
        return dt
    }

    /// A receive, timed on the wall clock; boundary messages (`charged`) pass through the
    /// link emulator, which may sleep (sleep clock) or advance the virtual clocks.
    private func timedRecv(_ met: inout StageStepMetrics, charged: Bool, boundary: Int = 0, fromLaterStage: Bool = false,
                           _ body: () throws -> WireBuffer) throws -> WireBuffer {
        let t0 = Clock.wall()
        let began = time.wallNow()
        let b = try body()
        if charged {
            try time.received(stamps: b.stamps, bytes: b.count, boundary: boundary, fromLaterStage: fromLaterStage,
                              waitBegan: began, receivedAt: time.wallNow())
        }
        met.recvWaitSeconds += Clock.wall() - t0
        return b
    }

    private func takeSlot(_ m: Int) -> Int {
        if let s = slotOf[m] { return s }
        guard let s = freeSlots.popLast() else { preconditionFailure("stage \(stageIndex): no free activation slot for micro-batch \(m)") }
        slotOf[m] = s
        return s
    }

    private func releaseSlot(_ m: Int) {
        if let s = slotOf.removeValue(forKey: m) { freeSlots.append(s) }
    }
}

/// A NaN or infinity in the loss or gradients: the run stops with the step and stage named.
public struct NonFiniteError: Error, CustomStringConvertible {
    public var what: String
    public var stage: Int
    /// The step's number as the console and the log count it (1 = the first step).
    public var step: Int
    public var microbatch: Int?
    public init(what: String, stage: Int, step: Int, microbatch: Int?) {
        self.what = what; self.stage = stage; self.step = step; self.microbatch = microbatch
    }
    public var description: String {
        "non-finite \(what) on stage \(stage) at step \(step)" + (microbatch.map { ", micro-batch \($0)" } ?? "")
            + " — this step's update was not applied (checkpoints up to step \(step - 1) hold no damage); lower --lr, keep --grad-clip on, resume from the last checkpoint, or pass --skip-nonfinite to skip such steps"
    }
}
