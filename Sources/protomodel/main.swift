import ProtoCore
print("placeholder")
