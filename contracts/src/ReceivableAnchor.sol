// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";

/// @title ReceivableAnchor
/// @notice Write-once Merkle roots of Qilian's receivable-event batches, numbered 1, 2, 3 … with no
/// gaps. Each leaf is OpenZeppelin's standard leaf of `[entryId, recordHash]` with encoding
/// `["bytes32","bytes32"]`, so a proof from `StandardMerkleTree` (standard-v1) verifies here.
/// @dev Two roles: the owner (the deployer; two-step transfer via {Ownable2Step}) only rotates the
/// anchorer; the anchorer (the ledger's hot key) only anchors roots. Nothing anchored can be changed.
contract ReceivableAnchor is Ownable2Step {
    struct Batch {
        bytes32 root;
        uint64 timestamp;
        uint64 blockNumber;
        uint32 count;
    }

    /// @notice The only account allowed to call {anchorRoot}.
    address public anchorer;
    /// @notice Id of the newest anchored batch; 0 before the first.
    uint64 public lastBatchId;
    /// @notice Anchored batches by id; an unknown id reads as all zeros.
    mapping(uint64 batchId => Batch) public batches;

    event RootAnchored(uint64 indexed batchId, bytes32 indexed root, uint32 count, uint64 timestamp);
    event AnchorerChanged(address indexed previousAnchorer, address indexed newAnchorer);

    error NotAnchorer(address caller);
    error ZeroAddress();
    error ZeroRoot();
    error ZeroCount();
    error BatchAlreadyAnchored(uint64 batchId);
    error BatchIdGap(uint64 expected, uint64 got);

    constructor(address initialAnchorer) Ownable(msg.sender) {
        _setAnchorer(initialAnchorer);
    }

    /// @notice Anchors the root of batch `batchId`, which must be `lastBatchId + 1`.
    /// @param count Number of leaves in the batch's tree.
    function anchorRoot(uint64 batchId, bytes32 root, uint32 count) external {
        if (msg.sender != anchorer) revert NotAnchorer(msg.sender);
        if (root == bytes32(0)) revert ZeroRoot();
        if (count == 0) revert ZeroCount();
        uint64 expected = lastBatchId + 1;
        if (batchId != expected) {
            if (batchId != 0 && batchId < expected) revert BatchAlreadyAnchored(batchId);
            revert BatchIdGap(expected, batchId);
        }
        uint64 timestamp = uint64(block.timestamp);
        batches[batchId] = Batch(root, timestamp, uint64(block.number), count);
        lastBatchId = batchId;
        emit RootAnchored(batchId, root, count, timestamp);
    }

    /// @notice Whether `(entryId, recordHash)` is a leaf of anchored batch `batchId`.
    /// @return ok True if the proof leads to the batch's root.
    /// @return timestamp Block timestamp of the anchoring when `ok`, else 0.
    /// @return blockNumber Block number of the anchoring when `ok`, else 0.
    function verifyEntry(uint64 batchId, bytes32 entryId, bytes32 recordHash, bytes32[] calldata proof)
        external
        view
        returns (bool ok, uint64 timestamp, uint64 blockNumber)
    {
        Batch storage batch = batches[batchId];
        if (batch.root == bytes32(0)) return (false, 0, 0);
        bytes32 leaf = keccak256(bytes.concat(keccak256(abi.encode(entryId, recordHash))));
        if (!MerkleProof.verifyCalldata(proof, batch.root, leaf)) return (false, 0, 0);
        return (true, batch.timestamp, batch.blockNumber);
    }

    /// @notice Replaces the anchorer (key rotation or compromise). Only the owner.
    function setAnchorer(address newAnchorer) external onlyOwner {
        _setAnchorer(newAnchorer);
    }

    function _setAnchorer(address newAnchorer) private {
        if (newAnchorer == address(0)) revert ZeroAddress();
        emit AnchorerChanged(anchorer, newAnchorer);
        anchorer = newAnchorer;
    }
}
