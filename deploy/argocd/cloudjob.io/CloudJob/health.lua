-- Argo CD health check for cloudjob.io/CloudJob.
--
-- Order of the rules:
--   1. status.observedGeneration behind metadata.generation: the operator has not seen the latest spec yet,
--      so every condition is stale -> Progressing.
--   2. Stalled=True (a lasting problem: missing Secret, rejected credentials, deadline) or Failed=True (the
--      cloud job failed) -> Degraded, with the condition's message.
--   3. Ready=True (the cloud job succeeded) -> Healthy.
--   4. Paused (annotation cloudjob.io/paused: "true", or phase Paused) -> Suspended.
--   5. Anything else -> Progressing, with the Reconciling condition's message.
local hs = {}

local function conditionMessage(condition)
  if condition.message ~= nil and condition.message ~= "" then
    return condition.message
  end
  if condition.reason ~= nil and condition.reason ~= "" then
    return condition.reason
  end
  return condition.type .. " is " .. condition.status
end

local status = obj.status
if status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report status"
  return hs
end

local generation = obj.metadata and obj.metadata.generation
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local conditions = {}
if status.conditions ~= nil then
  for _, condition in ipairs(status.conditions) do
    if condition.type ~= nil then
      conditions[condition.type] = condition
    end
  end
end

local function isTrue(conditionType)
  local condition = conditions[conditionType]
  return condition ~= nil and condition.status == "True"
end

if isTrue("Stalled") then
  hs.status = "Degraded"
  hs.message = conditionMessage(conditions["Stalled"])
  return hs
end
if isTrue("Failed") then
  hs.status = "Degraded"
  hs.message = conditionMessage(conditions["Failed"])
  return hs
end

if isTrue("Ready") then
  hs.status = "Healthy"
  hs.message = conditionMessage(conditions["Ready"])
  return hs
end

local annotations = obj.metadata and obj.metadata.annotations
local paused = (annotations ~= nil and annotations["cloudjob.io/paused"] == "true")
  or status.phase == "Paused"
if paused then
  hs.status = "Suspended"
  if conditions["Ready"] ~= nil then
    hs.message = conditionMessage(conditions["Ready"])
  else
    hs.message = "CloudJob is paused"
  end
  return hs
end

hs.status = "Progressing"
if isTrue("Reconciling") then
  hs.message = conditionMessage(conditions["Reconciling"])
elseif conditions["Ready"] ~= nil then
  hs.message = conditionMessage(conditions["Ready"])
else
  hs.message = "Waiting for the operator to reconcile"
end
return hs
