// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.27;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

/// @title ModelRegistry — model inventory with an on-chain compliance gate.
/// @notice Models are registered by their artifact CID, checked against an immutable
/// policy of numeric rules (evaluated here, by the contract), approved by distinct
/// roles (never by the registrant) and only then promoted to an alias. Drift above the
/// policy's limit marks a model for retraining, which blocks promotion for good.
/// All numbers are fixed-point integers scaled by SCALE (1e6): 0.85 is 850000.
contract ModelRegistry is AccessControl {
    bytes32 public constant POLICY_ADMIN_ROLE = keccak256("POLICY_ADMIN_ROLE");
    bytes32 public constant MODEL_OWNER_ROLE = keccak256("MODEL_OWNER_ROLE");
    bytes32 public constant VALIDATOR_ROLE = keccak256("VALIDATOR_ROLE");
    bytes32 public constant RISK_APPROVER_ROLE = keccak256("RISK_APPROVER_ROLE");
    bytes32 public constant COMPLIANCE_APPROVER_ROLE = keccak256("COMPLIANCE_APPROVER_ROLE");
    bytes32 public constant MONITOR_ROLE = keccak256("MONITOR_ROLE");

    uint256 public constant SCALE = 1e6;
    uint8 public constant GTE = 0; // value >= threshold passes
    uint8 public constant LTE = 1; // value <= threshold passes
    uint256 public constant MAX_RULES = 32;
    uint256 public constant MAX_APPROVER_ROLES = 8;

    enum Status {
        None,
        Registered,
        Validated,
        Failed,
        Promoted,
        RetrainRequired,
        Retired
    }

    struct Rule {
        bytes32 metric;
        uint8 comparator;
        uint256 threshold;
    }

    struct Policy {
        bool exists;
        uint256 maxDriftPsi;
        Rule[] rules;
        bytes32[] approverRoles;
    }

    struct Model {
        bytes32 cidDigest;
        string cid;
        bytes32 datasetDigest;
        bytes32 policyId;
        uint64 ledgerIndex;
        address registrant;
        uint64 registeredAt;
        Status status;
        bool metricsSubmitted;
        bool allPassed;
        uint256 lastDriftPsi;
        string aliasName;
    }

    mapping(bytes32 => Policy) private _policies;
    bytes32[] private _policyIds;
    mapping(bytes32 => Model) private _models;
    bytes32[] private _modelIds;
    mapping(bytes32 => mapping(bytes32 => uint256)) private _metric;
    mapping(bytes32 => mapping(bytes32 => bool)) private _hasMetric;
    mapping(bytes32 => mapping(bytes32 => address)) private _approvals;
    mapping(bytes32 => bytes32) private _aliasModel;

    error UnknownModel();
    error UnknownPolicy(bytes32 policyId);
    error PolicyExists(bytes32 policyId);
    error ModelExists(bytes32 modelId);
    error InvalidPolicy(string reason);
    error InvalidComparator(uint8 comparator);
    error InvalidModel(string reason);
    error MissingMetric(bytes32 metric);
    error DuplicateMetric(bytes32 metric);
    error MetricsAlreadySubmitted();
    error MetricsNotSubmitted();
    error RuleFailed(bytes32 metric, uint256 value, uint256 threshold);
    error MissingApproval(bytes32 role);
    error RoleNotRequired(bytes32 role);
    error SelfApproval();
    error AlreadyApproved(bytes32 role);
    error RetrainRequiredError();
    error ModelRetired();

    event PolicySet(bytes32 indexed policyId, uint256 ruleCount, bytes32[] approverRoles, uint256 maxDriftPsi);
    event ModelRegistered(
        bytes32 indexed modelId,
        bytes32 indexed policyId,
        address indexed registrant,
        string cid,
        bytes32 datasetDigest,
        uint64 ledgerIndex
    );
    event RuleEvaluated(
        bytes32 indexed modelId, bytes32 indexed metric, uint256 value, uint8 comparator, uint256 threshold, bool passed
    );
    event MetricsSubmitted(bytes32 indexed modelId, address indexed validator, bool allPassed);
    event Approved(bytes32 indexed modelId, bytes32 indexed role, address indexed approver);
    event Promoted(bytes32 indexed modelId, string aliasName, uint64 ledgerIndex, address indexed by);
    event DriftReported(bytes32 indexed modelId, uint256 psi, uint256 maxDriftPsi);
    event RetrainRequired(bytes32 indexed modelId, uint256 psi, uint256 maxDriftPsi);
    event RetrainCleared(bytes32 indexed modelId, bytes32 indexed successor, string aliasName);

    constructor(address admin) {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    // ---------------------------------------------------------------- policies

    /// @notice Create an immutable policy; a new version gets a new id, so the gate a model
    /// was registered under can never change after the fact.
    function setPolicy(bytes32 policyId, Rule[] calldata rules, bytes32[] calldata approverRoles, uint256 maxDriftPsi)
        external
        onlyRole(POLICY_ADMIN_ROLE)
    {
        if (policyId == bytes32(0)) revert InvalidPolicy("policy id is zero");
        if (_policies[policyId].exists) revert PolicyExists(policyId);
        if (rules.length == 0 || rules.length > MAX_RULES) revert InvalidPolicy("rule count out of range");
        if (approverRoles.length > MAX_APPROVER_ROLES) revert InvalidPolicy("too many approver roles");
        Policy storage p = _policies[policyId];
        p.exists = true;
        p.maxDriftPsi = maxDriftPsi;
        for (uint256 i = 0; i < rules.length; i++) {
            Rule calldata r = rules[i];
            if (r.comparator > LTE) revert InvalidComparator(r.comparator);
            if (r.metric == bytes32(0)) revert InvalidPolicy("metric id is zero");
            for (uint256 j = 0; j < i; j++) {
                if (rules[j].metric == r.metric) revert DuplicateMetric(r.metric);
            }
            p.rules.push(r);
        }
        for (uint256 i = 0; i < approverRoles.length; i++) {
            bytes32 role = approverRoles[i];
            if (role != RISK_APPROVER_ROLE && role != COMPLIANCE_APPROVER_ROLE) revert RoleNotRequired(role);
            for (uint256 j = 0; j < i; j++) {
                if (approverRoles[j] == role) revert InvalidPolicy("duplicate approver role");
            }
            p.approverRoles.push(role);
        }
        _policyIds.push(policyId);
        emit PolicySet(policyId, rules.length, approverRoles, maxDriftPsi);
    }

    function getPolicy(bytes32 policyId)
        external
        view
        returns (Rule[] memory rules, bytes32[] memory approverRoles, uint256 maxDriftPsi)
    {
        Policy storage p = _policies[policyId];
        if (!p.exists) revert UnknownPolicy(policyId);
        return (p.rules, p.approverRoles, p.maxDriftPsi);
    }

    function policyIds() external view returns (bytes32[] memory) {
        return _policyIds;
    }

    // ------------------------------------------------------------------ models

    /// @notice Register a model artifact. The model id is the sha2-256 digest inside its CID;
    /// ledgerIndex is the index of the mirrored entry in the LedgerML Merkle log.
    function registerModel(
        bytes32 cidDigest,
        string calldata cid,
        bytes32 datasetDigest,
        bytes32 policyId,
        uint64 ledgerIndex
    ) external onlyRole(MODEL_OWNER_ROLE) {
        if (cidDigest == bytes32(0)) revert InvalidModel("cid digest is zero");
        if (bytes(cid).length == 0 || bytes(cid).length > 128) revert InvalidModel("cid length out of range");
        if (!_policies[policyId].exists) revert UnknownPolicy(policyId);
        Model storage m = _models[cidDigest];
        if (m.status != Status.None) revert ModelExists(cidDigest);
        m.cidDigest = cidDigest;
        m.cid = cid;
        m.datasetDigest = datasetDigest;
        m.policyId = policyId;
        m.ledgerIndex = ledgerIndex;
        m.registrant = msg.sender;
        m.registeredAt = uint64(block.timestamp);
        m.status = Status.Registered;
        _modelIds.push(cidDigest);
        emit ModelRegistered(cidDigest, policyId, msg.sender, cid, datasetDigest, ledgerIndex);
    }

    /// @notice Independent validation: the contract itself compares each metric with its rule.
    function submitMetrics(bytes32 modelId, bytes32[] calldata metrics, uint256[] calldata values)
        external
        onlyRole(VALIDATOR_ROLE)
    {
        Model storage m = _model(modelId);
        if (m.status == Status.RetrainRequired) revert RetrainRequiredError();
        if (m.status == Status.Retired) revert ModelRetired();
        if (m.metricsSubmitted) revert MetricsAlreadySubmitted();
        if (m.registrant == msg.sender) revert SelfApproval();
        if (metrics.length != values.length) revert InvalidModel("metrics and values differ in length");
        for (uint256 i = 0; i < metrics.length; i++) {
            if (_hasMetric[modelId][metrics[i]]) revert DuplicateMetric(metrics[i]);
            _hasMetric[modelId][metrics[i]] = true;
            _metric[modelId][metrics[i]] = values[i];
        }
        Rule[] storage rules = _policies[m.policyId].rules;
        bool allPassed = true;
        for (uint256 i = 0; i < rules.length; i++) {
            Rule storage r = rules[i];
            if (!_hasMetric[modelId][r.metric]) revert MissingMetric(r.metric);
            uint256 v = _metric[modelId][r.metric];
            bool ok = _passes(r, v);
            allPassed = allPassed && ok;
            emit RuleEvaluated(modelId, r.metric, v, r.comparator, r.threshold, ok);
        }
        m.metricsSubmitted = true;
        m.allPassed = allPassed;
        m.status = allPassed ? Status.Validated : Status.Failed;
        emit MetricsSubmitted(modelId, msg.sender, allPassed);
    }

    /// @notice Approve as one of the policy's approver roles; the registrant never approves.
    function approve(bytes32 modelId, bytes32 role) external onlyRole(role) {
        Model storage m = _model(modelId);
        if (m.status == Status.RetrainRequired) revert RetrainRequiredError();
        if (m.status == Status.Retired) revert ModelRetired();
        if (!_isRequired(m.policyId, role)) revert RoleNotRequired(role);
        if (m.registrant == msg.sender) revert SelfApproval();
        if (_approvals[modelId][role] != address(0)) revert AlreadyApproved(role);
        if (!m.metricsSubmitted) revert MetricsNotSubmitted();
        _approvals[modelId][role] = msg.sender;
        emit Approved(modelId, role, msg.sender);
    }

    /// @notice Point `aliasName` at the model; refused with the precise reason unless metrics were
    /// submitted, every rule passed and every required role approved.
    function promote(bytes32 modelId, string calldata aliasName) external onlyRole(MODEL_OWNER_ROLE) {
        Model storage m = _model(modelId);
        if (m.status == Status.RetrainRequired) revert RetrainRequiredError();
        if (m.status == Status.Retired) revert ModelRetired();
        if (!m.metricsSubmitted) revert MetricsNotSubmitted();
        if (bytes(aliasName).length == 0 || bytes(aliasName).length > 64) revert InvalidModel("alias length out of range");
        Policy storage p = _policies[m.policyId];
        for (uint256 i = 0; i < p.rules.length; i++) {
            Rule storage r = p.rules[i];
            uint256 v = _metric[modelId][r.metric];
            if (!_passes(r, v)) revert RuleFailed(r.metric, v, r.threshold);
        }
        for (uint256 i = 0; i < p.approverRoles.length; i++) {
            if (_approvals[modelId][p.approverRoles[i]] == address(0)) revert MissingApproval(p.approverRoles[i]);
        }
        bytes32 key = keccak256(bytes(aliasName));
        bytes32 previous = _aliasModel[key];
        if (previous != bytes32(0) && previous != modelId && keccak256(bytes(_models[previous].aliasName)) == key) {
            Model storage old = _models[previous];
            old.aliasName = ""; // the alias moved on: the old model no longer holds it
            if (old.status == Status.RetrainRequired) {
                // A model that passed the gate has replaced the drifted one: the demand to
                // retrain is met. The old model is retired for good (never promoted again);
                // its drift stays in lastDriftPsi and the RetrainRequired event.
                old.status = Status.Retired;
                emit RetrainCleared(previous, modelId, aliasName);
            }
        }
        m.status = Status.Promoted;
        m.aliasName = aliasName;
        _aliasModel[key] = modelId;
        emit Promoted(modelId, aliasName, m.ledgerIndex, msg.sender);
    }

    /// @notice Report population drift (PSI); above the policy limit the model is marked
    /// RetrainRequired and can never be promoted again; promoting a model that passed the gate
    /// into its alias clears the mark (the old model becomes Retired).
    function reportDrift(bytes32 modelId, uint256 psi) external onlyRole(MONITOR_ROLE) {
        Model storage m = _model(modelId);
        uint256 limit = _policies[m.policyId].maxDriftPsi;
        m.lastDriftPsi = psi;
        emit DriftReported(modelId, psi, limit);
        if (psi > limit && m.status != Status.RetrainRequired && m.status != Status.Retired) {
            m.status = Status.RetrainRequired;
            emit RetrainRequired(modelId, psi, limit);
        }
    }

    // ------------------------------------------------------------------- views

    function getModel(bytes32 modelId) external view returns (Model memory) {
        Model storage m = _models[modelId];
        if (m.status == Status.None) revert UnknownModel();
        return m;
    }

    function modelIds() external view returns (bytes32[] memory) {
        return _modelIds;
    }

    function modelCount() external view returns (uint256) {
        return _modelIds.length;
    }

    function approvalOf(bytes32 modelId, bytes32 role) external view returns (address) {
        return _approvals[modelId][role];
    }

    function metricOf(bytes32 modelId, bytes32 metric) external view returns (bool present, uint256 value) {
        return (_hasMetric[modelId][metric], _metric[modelId][metric]);
    }

    function modelForAlias(string calldata aliasName) external view returns (bytes32) {
        return _aliasModel[keccak256(bytes(aliasName))];
    }

    // ---------------------------------------------------------------- internal

    function _model(bytes32 modelId) private view returns (Model storage m) {
        m = _models[modelId];
        if (m.status == Status.None) revert UnknownModel();
    }

    function _isRequired(bytes32 policyId, bytes32 role) private view returns (bool) {
        bytes32[] storage roles = _policies[policyId].approverRoles;
        for (uint256 i = 0; i < roles.length; i++) {
            if (roles[i] == role) return true;
        }
        return false;
    }

    function _passes(Rule storage r, uint256 v) private view returns (bool) {
        return r.comparator == GTE ? v >= r.threshold : v <= r.threshold;
    }
}
