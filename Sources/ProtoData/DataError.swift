// Errors about data files. Each names the file, what is wrong and how to fix it.

public enum DataError: Error, CustomStringConvertible, Equatable {
    case missing(path: String, fix: String)
    case empty(path: String, fix: String)
    case badShard(path: String, problem: String)
    case badTokenizer(path: String, problem: String)
    case tooSmall(path: String, problem: String)
    case io(path: String, problem: String)

    public var description: String {
        switch self {
        case let .missing(p, fix): return "\(p): not found — \(fix)"
        case let .empty(p, fix): return "\(p): is empty — \(fix)"
        case let .badShard(p, problem): return "shard \(p): \(problem) — re-run `protomodel prepare` to rewrite it"
        case let .badTokenizer(p, problem): return "tokenizer \(p): \(problem) — re-run `protomodel prepare` to train a new one"
        case let .tooSmall(p, problem): return "\(p): \(problem)"
        case let .io(p, problem): return "\(p): \(problem)"
        }
    }
}
