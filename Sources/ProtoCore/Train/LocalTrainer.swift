// Single-process training step: M micro-batches through the whole model, global-norm
// clipping, one AdamW update. The pipeline runs the same arithmetic split over ranks.

/// What one optimizer step produced.
public struct StepResult: Sendable {
    public var loss: Float        // mean over the step's micro-batches
    public var gradNorm: Double   // before clipping
    public var lr: Float
    public init(loss: Float, gradNorm: Double, lr: Float) { self.loss = loss; self.gradNorm = gradNorm; self.lr = lr }
}

/// One micro-batch of token ids and next-token targets, each B·T long.
public struct Microbatch: Sendable {
    public var ids: [Int32]
    public var targets: [Int32]
    public init(ids: [Int32], targets: [Int32]) {
        precondition(ids.count == targets.count, "ids and targets differ in length")
        self.ids = ids; self.targets = targets
    }
}

public final class LocalTrainer {
    public let model: StageModel
    public let optimizer: AdamW
    public let train: TrainConfig

    public init(model: StageModel, train: TrainConfig) {
        precondition(model.stage.hasEmbedding && model.stage.hasHead, "LocalTrainer needs the whole model")
        self.model = model; self.train = train
        optimizer = AdamW(layout: model.layout, config: train.adamw)
    }

    /// Runs forward+backward over `batches` (M of them) and applies one update.
    public func step(_ step: Int, _ batches: [Microbatch]) -> StepResult {
        model.zeroGrad()
        let scale = 1 / Float(model.tokensPerMicrobatch * batches.count)
        var loss: Double = 0
        for mb in batches {
            let l = mb.ids.withUnsafeBufferPointer { ids in
                mb.targets.withUnsafeBufferPointer { t in
                    model.forward(slot: 0, ids: ids.baseAddress!, targets: t.baseAddress!)!
                }
            }
            loss += Double(l)
            model.backward(slot: 0, lossScale: scale)
        }
        model.projectGradients()
        let norm = model.gradSumSquares().squareRoot()
        model.applyUpdate(step: step, globalNorm: norm, optimizer: optimizer, train: train)
        return StepResult(loss: Float(loss / Double(batches.count)), gradNorm: norm, lr: train.schedule.lr(at: step))
    }

    /// Mean loss over `batches` without touching gradients or weights.
    public func evaluate(_ batches: [Microbatch]) -> Float {
        var total: Double = 0
        for mb in batches {
            total += Double(mb.ids.withUnsafeBufferPointer { ids in
                mb.targets.withUnsafeBufferPointer { model.forward(slot: 0, ids: ids.baseAddress!, targets: $0.baseAddress!)! }
            })
        }
        return Float(total / Double(max(1, batches.count)))
    }
}
