import GRDB

extension SQLiteRegistryIndex {
    public func authorshipCommits(dataset: String) throws -> Set<String> {
        try read { db in
            Set(try String.fetchAll(db, sql: "SELECT commit_id FROM authorship_commits WHERE dataset = ?", arguments: [dataset]))
        }
    }

    /// Results computed by libgit2's blame, which does not follow renames as git blame does,
    /// are wrong wherever a file's history crosses a rename; the cache is derived data, so it
    /// is emptied once and refilled by the history walk on demand.
    static func registerAuthorshipEngineMigration(_ migrator: inout DatabaseMigrator) {
        migrator.registerMigration("v6-authorship-follows-renames") { db in
            try db.execute(sql: "DELETE FROM file_authorship")
            try db.execute(sql: "DELETE FROM authorship_commits")
        }
    }
}
