"""Windows features on a server (Install-WindowsFeature NLB): New-NlbCluster and
Add-NlbClusterNode need NLB installed on their hosts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from casarray.directory.nlb.objects import FeatureResult, WindowsFeature
from casarray.directory.nlb.values import FEATURES
from casarray.directory.objects import Server
from casarray.shell.cmdlet import Cmdlet, Example, Parameter, register
from casarray.shell.objects import identity_arg
from casarray.shell.psobject import PSObject
from casarray.shell.views import register_view

FEATURE_RESULT_TYPE = "Microsoft.Windows.ServerManager.Commands.FeatureOperationResult"
FEATURE_TYPE = "Microsoft.Windows.ServerManager.Commands.Feature"

register_view(FEATURE_RESULT_TYPE, ("Success", "RestartNeeded", "ExitCode", "FeatureResult"))
register_view(FEATURE_TYPE, ("DisplayName", "Name", "InstallState"))


# -- objects ---------------------------------------------------------------------------


def feature_result_object(result: FeatureResult) -> PSObject:
    return PSObject(
        {
            "Success": result.success,
            "RestartNeeded": "No",
            "ExitCode": result.exit_code,
            "FeatureResult": [f.display_name for f in result.changed],
            "ComputerName": result.server,
        },
        type_name=FEATURE_RESULT_TYPE,
        base=result,
        display=result.exit_code,
    )


def feature_object(feature: WindowsFeature) -> PSObject:
    return PSObject(
        {
            "DisplayName": feature.display_name,
            "Name": feature.name,
            "InstallState": "Installed" if feature.installed else "Available",
            "Installed": feature.installed,
            "FeatureType": "Feature",
            "ComputerName": feature.server,
        },
        type_name=FEATURE_TYPE,
        base=feature,
        display=feature.name,
    )


# -- Windows features -----------------------------------------------------------------


class _FeatureCmdlet(Cmdlet):
    parameters = (
        Parameter(
            "Name",
            kind="strings",
            mandatory=True,
            position=0,
            from_pipeline=True,
            help=f"The features: {', '.join(FEATURES)}.",
        ),
        Parameter(
            "ComputerName",
            kind="identity",
            mandatory=True,
            aliases=("Cn",),
            identity_of="server",
            help="The server to change.",
        ),
        Parameter("IncludeManagementTools", kind="switch", help="Also the tools (RSAT-NLB)."),
        Parameter("Restart", kind="switch", help="Accepted; no restart is needed."),
    )
    supports_should_process = True

    def _names(self, params: Mapping[str, Any]) -> list[str]:
        names = [str(n) for n in params["Name"]]
        if params.get("IncludeManagementTools") and any(n.lower() == "nlb" for n in names):
            names.append("RSAT-NLB")
        return names


@register
class InstallWindowsFeature(_FeatureCmdlet):
    name = "Install-WindowsFeature"
    aliases = ("Add-WindowsFeature",)
    synopsis = "Installs Windows features (NLB) on a server."
    description = (
        "Records the feature as installed on the server. New-NlbCluster and "
        "Add-NlbClusterNode need NLB on their hosts. Installing a feature that is "
        "there already changes nothing (Exit Code NoChangeNeeded)."
    )
    examples = (
        Example(
            "Install-WindowsFeature NLB -ComputerName CAS01",
            "Installs Network Load Balancing on CAS01.",
        ),
        Example(
            "Add-WindowsFeature -Name NLB -ComputerName CAS02 -IncludeManagementTools",
            "Installs NLB and its management tools on CAS02.",
        ),
    )

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        server = identity_arg(params["ComputerName"], Server)
        if not self.should_process(str(server)):
            return
        yield feature_result_object(self.directory.nlb.install_feature(server, self._names(params)))


@register
class UninstallWindowsFeature(_FeatureCmdlet):
    name = "Uninstall-WindowsFeature"
    aliases = ("Remove-WindowsFeature",)
    synopsis = "Removes Windows features (NLB) from a server."
    description = "Removes the feature; NLB can't go while the server is a cluster node."
    examples = (
        Example("Uninstall-WindowsFeature NLB -ComputerName CAS03", "Removes NLB from CAS03."),
    )

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        server = identity_arg(params["ComputerName"], Server)
        if not self.should_process(str(server)):
            return
        yield feature_result_object(
            self.directory.nlb.uninstall_feature(server, self._names(params))
        )


@register
class GetWindowsFeature(Cmdlet):
    name = "Get-WindowsFeature"
    parameters = (
        Parameter("Name", kind="strings", position=0, help="Only these features."),
        Parameter(
            "ComputerName",
            kind="identity",
            mandatory=True,
            aliases=("Cn",),
            identity_of="server",
            help="The server.",
        ),
    )
    synopsis = "Gets the Windows features of a server and whether they are installed."
    description = f"Shows the features casarray knows ({', '.join(FEATURES)}) on a server."
    examples = (
        Example("Get-WindowsFeature NLB -ComputerName CAS01", "Is NLB installed on CAS01?"),
    )

    def process(self, params: Mapping[str, Any]) -> Iterable[Any]:
        server = identity_arg(params["ComputerName"], Server)
        for feature in self.directory.nlb.features(server, params.get("Name")):
            yield feature_object(feature)
