-- Argo CD health check for InfraGenius resources (Analysis, SLOReview, IncidentReport).
-- The three kinds share status.phase (Pending|Running|Completed|Failed) and a Ready condition.
local hs = {}
local status = obj.status
if status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator"
  return hs
end

local generation = obj.metadata and obj.metadata.generation
if generation ~= nil and status.observedGeneration ~= nil and status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end

local ready = nil
if status.conditions ~= nil then
  for _, condition in ipairs(status.conditions) do
    if condition.type == "Ready" then
      ready = condition
    end
  end
end

local message = ""
if ready ~= nil and ready.message ~= nil then
  message = ready.message
elseif status.message ~= nil then
  message = status.message
end
local phase = status.phase or "Pending"

if phase == "Failed" then
  hs.status = "Degraded"
  hs.message = message ~= "" and message or "Failed"
elseif ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = message ~= "" and message or phase
elseif phase == "Completed" and ready ~= nil and ready.status == "False" then
  hs.status = "Degraded"
  hs.message = message ~= "" and message or ("Not ready: " .. (ready.reason or "unknown"))
else
  hs.status = "Progressing"
  hs.message = message ~= "" and message or phase
end
return hs
