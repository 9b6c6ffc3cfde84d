extension Repository {
    /// The blob at `path` in commit `id`'s tree, or nil.
    public func blob(atPath path: String, inCommit id: ObjectID) throws -> ObjectID? {
        try blob(atPath: path, inTree: try commit(id).tree)
    }
}
