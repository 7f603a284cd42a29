// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";

/// @title FinancingRegistry
/// @notice The double-financing guard: at most one active financing per invoice fingerprint, shared
/// by every platform that knows the fingerprint key. A split voucher's parts are financed one by
/// one: while any part of an invoice is active the whole invoice can't be financed, and while the
/// whole is active none of its parts can be. Parts of parts are registered against the original
/// invoice's fingerprint (the registry tracks one level).
/// @dev `fingerprint = keccak256(HMAC-SHA256(registry_key, normalised invoice identity))`; nothing
/// in clear is stored. Two roles: the owner (the deployer; two-step transfer via {Ownable2Step})
/// only rotates the registrar; the registrar registers and releases.
/// Release reasons: 1 repaid, 2 cancelled, 3 defaulted, 4 other.
contract FinancingRegistry is Ownable2Step {
    struct Financing {
        bytes32 financingRef;
        bytes32 invoiceFingerprint; // zero for a whole invoice, the invoice's fingerprint for a part
        uint64 since;
    }

    uint8 private constant REASON_MIN = 1; // repaid
    uint8 private constant REASON_MAX = 4; // 2 cancelled, 3 defaulted, 4 other

    /// @notice The only account allowed to register and release.
    address public registrar;
    /// @notice Number of active parts per invoice fingerprint.
    mapping(bytes32 invoiceFingerprint => uint32) public activePartCount;
    mapping(bytes32 fingerprint => Financing) private _financings;

    event Registered(bytes32 indexed fingerprint, bytes32 indexed financingRef, uint64 since);
    event PartRegistered(
        bytes32 indexed invoiceFingerprint, bytes32 indexed partFingerprint, bytes32 indexed financingRef, uint64 since
    );
    event Released(bytes32 indexed fingerprint, bytes32 indexed financingRef, uint8 reason);
    event RegistrarChanged(address indexed previousRegistrar, address indexed newRegistrar);

    error NotRegistrar(address caller);
    error ZeroAddress();
    error ZeroFingerprint();
    error ZeroFinancingRef();
    error AlreadyFinanced(bytes32 fingerprint, bytes32 existingRef);
    error InvoicePartsFinanced(bytes32 invoiceFingerprint, uint32 activeParts);
    error InvoiceWholeFinanced(bytes32 invoiceFingerprint, bytes32 existingRef);
    error PartEqualsInvoice(bytes32 fingerprint);
    error NotFinanced(bytes32 fingerprint);
    error FinancingRefMismatch(bytes32 fingerprint, bytes32 activeRef, bytes32 givenRef);
    error InvalidReason(uint8 reason);

    modifier onlyRegistrar() {
        if (msg.sender != registrar) revert NotRegistrar(msg.sender);
        _;
    }

    constructor(address initialRegistrar) Ownable(msg.sender) {
        _setRegistrar(initialRegistrar);
    }

    /// @notice Registers the financing of a whole invoice.
    function register(bytes32 fingerprint, bytes32 financingRef) external onlyRegistrar {
        if (fingerprint == bytes32(0)) revert ZeroFingerprint();
        if (financingRef == bytes32(0)) revert ZeroFinancingRef();
        _requireFree(fingerprint);
        uint64 since = uint64(block.timestamp);
        Financing storage financing = _financings[fingerprint];
        financing.financingRef = financingRef; // invoiceFingerprint stays zero: a whole invoice
        financing.since = since;
        emit Registered(fingerprint, financingRef, since);
    }

    /// @notice Registers the financing of one part of a split invoice.
    function registerPart(bytes32 invoiceFingerprint, bytes32 partFingerprint, bytes32 financingRef)
        external
        onlyRegistrar
    {
        if (invoiceFingerprint == bytes32(0) || partFingerprint == bytes32(0)) revert ZeroFingerprint();
        if (financingRef == bytes32(0)) revert ZeroFinancingRef();
        if (invoiceFingerprint == partFingerprint) revert PartEqualsInvoice(partFingerprint);
        bytes32 wholeRef = _financings[invoiceFingerprint].financingRef;
        if (wholeRef != bytes32(0)) revert InvoiceWholeFinanced(invoiceFingerprint, wholeRef);
        _requireFree(partFingerprint);
        uint64 since = uint64(block.timestamp);
        _financings[partFingerprint] = Financing(financingRef, invoiceFingerprint, since);
        activePartCount[invoiceFingerprint] += 1;
        emit PartRegistered(invoiceFingerprint, partFingerprint, financingRef, since);
    }

    /// @notice Ends the active financing `financingRef` of `fingerprint` (a whole or a part).
    /// @param reason 1 repaid, 2 cancelled, 3 defaulted, 4 other.
    function release(bytes32 fingerprint, bytes32 financingRef, uint8 reason) external onlyRegistrar {
        if (reason < REASON_MIN || reason > REASON_MAX) revert InvalidReason(reason);
        Financing storage financing = _financings[fingerprint];
        bytes32 activeRef = financing.financingRef;
        if (activeRef == bytes32(0)) revert NotFinanced(fingerprint);
        if (activeRef != financingRef) revert FinancingRefMismatch(fingerprint, activeRef, financingRef);
        bytes32 invoiceFingerprint = financing.invoiceFingerprint;
        if (invoiceFingerprint != bytes32(0)) activePartCount[invoiceFingerprint] -= 1;
        delete _financings[fingerprint];
        emit Released(fingerprint, financingRef, reason);
    }

    /// @notice The active financing of `fingerprint`, if any; all zeros when none.
    function status(bytes32 fingerprint) external view returns (bool active, bytes32 financingRef, uint64 since) {
        Financing storage financing = _financings[fingerprint];
        return (financing.financingRef != bytes32(0), financing.financingRef, financing.since);
    }

    /// @notice The invoice an active part belongs to; zero for a whole invoice or no financing.
    function invoiceOf(bytes32 partFingerprint) external view returns (bytes32) {
        return _financings[partFingerprint].invoiceFingerprint;
    }

    /// @notice Replaces the registrar (key rotation or compromise). Only the owner.
    function setRegistrar(address newRegistrar) external onlyOwner {
        _setRegistrar(newRegistrar);
    }

    function _requireFree(bytes32 fingerprint) private view {
        bytes32 existingRef = _financings[fingerprint].financingRef;
        if (existingRef != bytes32(0)) revert AlreadyFinanced(fingerprint, existingRef);
        uint32 parts = activePartCount[fingerprint];
        if (parts != 0) revert InvoicePartsFinanced(fingerprint, parts);
    }

    function _setRegistrar(address newRegistrar) private {
        if (newRegistrar == address(0)) revert ZeroAddress();
        emit RegistrarChanged(registrar, newRegistrar);
        registrar = newRegistrar;
    }
}
