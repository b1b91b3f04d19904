// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

/// @title AuditAnchor — public anchors of LedgerML log checkpoints.
/// @notice A LOG_OPERATOR records (origin, tree size, root hash, note hash) of a signed
/// C2SP checkpoint. Per origin the tree size must strictly grow, so a rewritten or
/// rolled-back log cannot be anchored without the chain showing it.
contract AuditAnchor is AccessControl {
    bytes32 public constant LOG_OPERATOR_ROLE = keccak256("LOG_OPERATOR_ROLE");

    struct Anchor {
        bytes32 originHash;
        string origin;
        uint64 treeSize;
        bytes32 rootHash;
        bytes32 noteHash;
        uint64 blockNumber;
        uint64 timestamp;
        address operator;
    }

    Anchor[] private _anchors;
    mapping(bytes32 => uint64) private _latestSize;
    mapping(bytes32 => uint256) private _latestIndexPlusOne;

    error TreeSizeNotGrowing(uint64 previous, uint64 given);
    error InvalidAnchor(string reason);

    event Anchored(
        uint256 indexed index,
        bytes32 indexed originHash,
        string origin,
        uint64 treeSize,
        bytes32 rootHash,
        bytes32 noteHash
    );

    constructor(address admin) {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    function anchor(string calldata origin, uint64 treeSize, bytes32 rootHash, bytes32 noteHash)
        external
        onlyRole(LOG_OPERATOR_ROLE)
        returns (uint256 index)
    {
        if (bytes(origin).length == 0 || bytes(origin).length > 256) revert InvalidAnchor("origin length out of range");
        bytes32 originHash = keccak256(bytes(origin));
        uint64 previous = _latestSize[originHash];
        if (treeSize <= previous) revert TreeSizeNotGrowing(previous, treeSize);
        _latestSize[originHash] = treeSize;
        index = _anchors.length;
        _anchors.push(
            Anchor(originHash, origin, treeSize, rootHash, noteHash, uint64(block.number), uint64(block.timestamp), msg.sender)
        );
        _latestIndexPlusOne[originHash] = index + 1;
        emit Anchored(index, originHash, origin, treeSize, rootHash, noteHash);
    }

    function anchorCount() external view returns (uint256) {
        return _anchors.length;
    }

    function anchorAt(uint256 index) external view returns (Anchor memory) {
        if (index >= _anchors.length) revert InvalidAnchor("index out of range");
        return _anchors[index];
    }

    /// @notice Anchors [start, start+count) clipped to the list, for paging readers.
    function getAnchors(uint256 start, uint256 count) external view returns (Anchor[] memory out) {
        uint256 n = _anchors.length;
        if (start >= n) return new Anchor[](0);
        uint256 end = start + count > n ? n : start + count;
        out = new Anchor[](end - start);
        for (uint256 i = start; i < end; i++) {
            out[i - start] = _anchors[i];
        }
    }

    function latestTreeSize(string calldata origin) external view returns (uint64) {
        return _latestSize[keccak256(bytes(origin))];
    }
}
