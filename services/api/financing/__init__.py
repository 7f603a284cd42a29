"""The factoring marketplace: financing requests (auctions), sealed bank offers, exactly-once
acceptance guarded in the database and on chain, funding, repayment and default."""
